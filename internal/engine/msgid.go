package engine

import (
	"fmt"

	"github.com/apache/pulsar-client-go/pulsar"
	"google.golang.org/protobuf/encoding/protowire"
)

// sequenceID derives the sequence id of output n of the input with id from the input's
// position, so that a redelivered input's outputs carry the ids they had the first time and
// the broker drops them as duplicates. Layout, 63 bits: ledger (25) | entry (20) | batch index
// (10, the Go client batches up to 1000) | output (8): under EFFECTIVELY_ONCE an input has at
// most 256 outputs. EFFECTIVELY_ONCE uses one lane (Failover), so the ids increase.
func sequenceID(id pulsar.MessageID, n int) (int64, error) {
	ledger, entry, batch := id.LedgerID(), id.EntryID(), int64(max(id.BatchIdx(), 0))
	if ledger < 0 || ledger >= 1<<25 || entry < 0 || entry >= 1<<20 || batch >= 1<<10 || n >= 1<<8 {
		return 0, fmt.Errorf("EFFECTIVELY_ONCE: input %s, output %d, is beyond the sequence id layout (ledger < 2^25, entry < 2^20, batch index < 1024, at most 256 outputs per input)", id, n)
	}
	return ledger<<38 | entry<<18 | batch<<8 | int64(n), nil
}

// SerializeID encodes id as the Go client's MessageID.Serialize does (MessageIdData: ledger,
// entry, partition, batch index, batch size; pulsar.DeserializeMessageID reads it back), by
// hand: Serialize goes through protobuf reflection, a measurable cost per input.
func SerializeID(id pulsar.MessageID) []byte {
	b := make([]byte, 0, 48)
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(id.LedgerID()))
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(id.EntryID()))
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(int64(id.PartitionIdx())))
	b = protowire.AppendTag(b, 4, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(int64(id.BatchIdx())))
	b = protowire.AppendTag(b, 6, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(int64(id.BatchSize())))
}
