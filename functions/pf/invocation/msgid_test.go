package invocation

import (
	"testing"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
)

// msgID is a pulsar.MessageID with chosen fields.
type msgID struct {
	ledger, entry           int64
	batch, partition, bsize int32
}

func (m msgID) Serialize() []byte           { return nil }
func (m msgID) LedgerID() int64             { return m.ledger }
func (m msgID) EntryID() int64              { return m.entry }
func (m msgID) BatchIdx() int32             { return m.batch }
func (m msgID) PartitionIdx() int32         { return m.partition }
func (m msgID) BatchSize() int32            { return m.bsize }
func (m msgID) String() string              { return "id" }
func (m msgID) Equal(pulsar.MessageID) bool { return false }

// decodeID reads MessageIdData fields 1-6 back.
func decodeID(t *testing.T, b []byte) map[protowire.Number]uint64 {
	t.Helper()
	out := map[protowire.Number]uint64{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		require.GreaterOrEqual(t, n, 0)
		require.Equal(t, protowire.VarintType, typ)
		b = b[n:]
		v, n := protowire.ConsumeVarint(b)
		require.GreaterOrEqual(t, n, 0)
		b = b[n:]
		out[num] = v
	}
	return out
}

// message is a pulsar.Message with a topic and an id; the other methods are not called.
type message struct {
	pulsar.Message
	topic string
	id    pulsar.MessageID
}

func (m *message) Topic() string        { return m.topic }
func (m *message) ID() pulsar.MessageID { return m.id }

func TestJavaMessageID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		topic string
		id    msgID
		want  map[protowire.Number]uint64
	}{
		{"single message, non-partitioned", "persistent://public/default/in", msgID{33, 1, 0, 0, 1},
			map[protowire.Number]uint64{1: 33, 2: 1}},
		{"batched", "persistent://public/default/in", msgID{33, 1, 2, 0, 5},
			map[protowire.Number]uint64{1: 33, 2: 1, 4: 2, 6: 5}},
		{"partition", "persistent://public/default/in-partition-3", msgID{7, 8, 0, 3, 1},
			map[protowire.Number]uint64{1: 7, 2: 8, 3: 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := javaMessageID(&message{topic: tc.topic, id: tc.id})
			assert.Equal(t, tc.want, decodeID(t, got))
		})
	}
}
