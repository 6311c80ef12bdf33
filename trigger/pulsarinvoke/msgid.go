package pulsarinvoke

import (
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/apache/pulsar-client-go/pulsar"
	"google.golang.org/protobuf/encoding/protowire"
)

// msgKey identifies one message of the cluster: BookKeeper ledger ids are unique, so the
// ledger, the entry and the index within a batched entry name one message whatever the topic
// or partition.
type msgKey struct {
	ledger, entry int64
	// index is the message's position in its entry: 0 for an entry that holds one message.
	index int32
}

// keyOf returns the key of a message id as the Go client reports it.
func keyOf(id pulsar.MessageID) msgKey {
	return msgKey{ledger: id.LedgerID(), entry: id.EntryID(), index: max(id.BatchIdx(), 0)}
}

// parseInputMessageID decodes invocation.InputMessageID: the base64 of a serialized
// MessageIdData (fields 1 ledger, 2 entry, 3 partition, 4 batch index, 6 batch size).
//
// Two layouts occur and both decode to the same key. Java's MessageId.toByteArray (the worker's
// Java and Python instances, and fnhost's Pulsar Functions instance, which copies it) writes no
// partition for a non-partitioned topic and no batch index for an entry of one message.
// pulsar-client-go's Serialize (fnhost's host runtime) writes every field: partition -1 or the
// partition, batch index -1 for a message that is not batched, 0 of 1 for a batch of one.
// A missing or negative batch index means the entry's only message: index 0.
func parseInputMessageID(s string) (msgKey, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return msgKey{}, fmt.Errorf("message id %q: %w", s, err)
	}
	var k msgKey
	var haveLedger, haveEntry bool
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return msgKey{}, fmt.Errorf("message id %q: %w", s, protowire.ParseError(n))
		}
		b = b[n:]
		if typ != protowire.VarintType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return msgKey{}, fmt.Errorf("message id %q: %w", s, protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return msgKey{}, fmt.Errorf("message id %q: %w", s, protowire.ParseError(n))
		}
		b = b[n:]
		switch num {
		case 1:
			k.ledger, haveLedger = int64(v), true
		case 2:
			k.entry, haveEntry = int64(v), true
		case 4:
			k.index = max(int32(v), 0) // int32 on the wire: -1 arrives as a 64-bit two's complement
		}
	}
	if !haveLedger || !haveEntry {
		return msgKey{}, errors.New("message id: no ledger or entry")
	}
	return k, nil
}
