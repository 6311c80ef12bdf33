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

func TestSequenceID(t *testing.T) {
	t.Parallel()
	ids := []fakeID{{1, 0, -1}, {1, 0, 0}, {1, 1, -1}, {1, 1, 5}, {2, 0, -1}, {1<<25 - 1, 1<<20 - 1, 1023}}
	var prev int64 = -1
	for _, x := range ids {
		for n := range 3 {
			seq, err := sequenceID(x, n)
			require.NoError(t, err)
			if x != (fakeID{1, 0, 0}) { // same position as batch -1
				assert.Greater(t, seq, prev, "ids increase with the input position and the output")
			}
			prev = seq
		}
	}
	_, err := sequenceID(fakeID{1 << 25, 0, 0}, 0)
	assert.Error(t, err)
	_, err = sequenceID(fakeID{1, 0, 0}, 256)
	assert.Error(t, err)
}

// fakeID is a pulsar.MessageID at a chosen position.
type fakeID struct {
	ledger, entry int64
	batch         int32
}

func (f fakeID) Serialize() []byte             { return nil }
func (f fakeID) LedgerID() int64               { return f.ledger }
func (f fakeID) EntryID() int64                { return f.entry }
func (f fakeID) BatchIdx() int32               { return f.batch }
func (f fakeID) PartitionIdx() int32           { return 0 }
func (f fakeID) BatchSize() int32              { return 0 }
func (f fakeID) String() string                { return "id" }
func (f fakeID) Equal(o pulsar.MessageID) bool { return false }
