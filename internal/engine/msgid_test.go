package engine

import (
	"testing"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSerializeIDIsTheClients: the hand encoding is byte for byte the Go client's, and reads back.
func TestSerializeIDIsTheClients(t *testing.T) {
	t.Parallel()
	for _, id := range []pulsar.MessageID{
		pulsar.NewMessageID(33, 7, -1, -1),
		pulsar.NewMessageID(1<<40, 1<<20, 3, 2),
		pulsar.EarliestMessageID(),
	} {
		got := SerializeID(id)
		assert.Equal(t, id.Serialize(), got, "%v", id)
		back, err := pulsar.DeserializeMessageID(got)
		require.NoError(t, err)
		assert.Equal(t, id.LedgerID(), back.LedgerID())
		assert.Equal(t, id.EntryID(), back.EntryID())
		assert.Equal(t, id.PartitionIdx(), back.PartitionIdx())
		assert.Equal(t, id.BatchIdx(), back.BatchIdx())
	}
}
