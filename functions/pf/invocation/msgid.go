package invocation

import (
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/apache/pulsar-client-go/pulsar"
	"google.golang.org/protobuf/encoding/protowire"
)

// MessageID returns the InputMessageID value of an output that answers input m: the base64
// (standard encoding) of m's id serialized as Pulsar's Java client does. The SDK's Pulsar
// Functions instance and the host runtime both set it with this function.
func MessageID(m pulsar.Message) string {
	return base64.StdEncoding.EncodeToString(javaMessageID(m))
}

// javaMessageID serializes the id of m the way Pulsar's Java client does (MessageIdData):
// no partition for a non-partitioned topic (Go says 0, Java -1) and no batch index for an
// entry holding one message (Go says index 0 of 1). `pulsar-admin functions trigger` decodes
// __pfn_input_msg_id__ and compares it with the id its Java producer got, so Go's own
// Serialize never matches. A batch of one from a Go producer is encoded as a single message
// too: the Go client cannot tell the two apart.
func javaMessageID(m pulsar.Message) []byte {
	id := m.ID()
	b := protowire.AppendTag(nil, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(id.LedgerID()))
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(id.EntryID()))
	if partitioned(m.Topic()) && id.PartitionIdx() >= 0 {
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(id.PartitionIdx()))
	}
	if id.BatchSize() > 1 && id.BatchIdx() >= 0 {
		b = protowire.AppendTag(b, 4, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(id.BatchIdx()))
		b = protowire.AppendTag(b, 6, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(id.BatchSize()))
	}
	return b
}

// partitioned reports whether topic names one partition of a partitioned topic.
func partitioned(topic string) bool {
	i := strings.LastIndex(topic, "-partition-")
	if i < 0 {
		return false
	}
	_, err := strconv.Atoi(topic[i+len("-partition-"):])
	return err == nil
}
