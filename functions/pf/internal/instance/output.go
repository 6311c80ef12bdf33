package instance

import (
	"strconv"
	"strings"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
	pb "github.com/fnhost/fnhost/functions/pf/internal/pfproto"
	"github.com/fnhost/fnhost/functions/pf/invocation"
)

// producerOptions are the options of every producer of the instance: the output topic's,
// those of FunctionContext.NewOutputMessage and the reply-to topics'. Defaults are Pulsar
// Functions': LZ4, batching with a 10 ms delay.
func producerOptions(topic string, spec *pb.ProducerSpec, info *call.Info) pulsar.ProducerOptions {
	o := pulsar.ProducerOptions{
		Topic:                   topic,
		Properties:              componentProperties(info),
		CompressionType:         pulsar.LZ4,
		BatchingMaxPublishDelay: 10 * time.Millisecond,
	}
	if spec == nil {
		return o
	}
	switch spec.CompressionType {
	case pb.CompressionType_NONE:
		o.CompressionType = pulsar.NoCompression
	case pb.CompressionType_ZLIB:
		o.CompressionType = pulsar.ZLib
	case pb.CompressionType_ZSTD:
		o.CompressionType = pulsar.ZSTD
	default: // LZ4, and SNAPPY, which the Go client lacks
		o.CompressionType = pulsar.LZ4
	}
	if spec.MaxPendingMessages > 0 {
		o.MaxPendingMessages = int(spec.MaxPendingMessages)
	}
	builder := spec.BatchBuilder
	if b := spec.BatchingSpec; b != nil {
		o.DisableBatching = !b.Enabled
		if b.BatchingMaxPublishDelayMs > 0 {
			o.BatchingMaxPublishDelay = time.Duration(b.BatchingMaxPublishDelayMs) * time.Millisecond
		}
		if b.BatchingMaxMessages > 0 {
			o.BatchingMaxMessages = uint(b.BatchingMaxMessages)
		}
		if b.BatchingMaxBytes > 0 {
			o.BatchingMaxSize = uint(b.BatchingMaxBytes)
		}
		if b.BatchBuilder != "" {
			builder = b.BatchBuilder
		}
	}
	if strings.EqualFold(builder, "KEY_BASED") {
		o.BatcherBuilderType = pulsar.KeyBasedBatchBuilder
	}
	return o
}

// replyProducerOptions are the options of a reply-to topic's producer: the output producers'
// (producerOptions), batching for invocation.ReplyBatchingDelay at most.
func replyProducerOptions(topic string, spec *pb.ProducerSpec, info *call.Info) pulsar.ProducerOptions {
	o := producerOptions(topic, spec, info)
	o.BatchingMaxPublishDelay = min(o.BatchingMaxPublishDelay, invocation.ReplyBatchingDelay)
	return o
}

// componentProperties are the producer and consumer properties Pulsar Functions set.
func componentProperties(info *call.Info) map[string]string {
	return map[string]string{
		"application": "pulsar-function",
		"id":          info.FQFN(),
		"instance_id": strconv.Itoa(info.InstanceID),
	}
}

// backoff is the NackBackoffPolicy of fnhost.retryBackoff: first, then doubling, capped.
type backoff struct{ first, max time.Duration }

// Next implements pulsar.NackBackoffPolicy.
func (b backoff) Next(redeliveryCount uint32) time.Duration {
	d := b.first
	for range redeliveryCount {
		if d >= b.max/2 {
			return b.max
		}
		d *= 2
	}
	return min(d, b.max)
}
