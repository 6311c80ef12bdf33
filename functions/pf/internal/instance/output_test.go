package instance

import (
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/assert"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
	pb "github.com/fnhost/fnhost/functions/pf/internal/pfproto"
)

func TestProducerOptions(t *testing.T) {
	t.Parallel()
	info := &call.Info{Tenant: "t", Namespace: "n", Name: "f", InstanceID: 1}
	props := map[string]string{"application": "pulsar-function", "id": "t/n/f", "instance_id": "1"}
	tests := []struct {
		name string
		spec *pb.ProducerSpec
		want pulsar.ProducerOptions
	}{
		{"defaults", nil, pulsar.ProducerOptions{Topic: "o", Properties: props, CompressionType: pulsar.LZ4,
			BatchingMaxPublishDelay: 10 * time.Millisecond}},
		{"none, key based", &pb.ProducerSpec{CompressionType: pb.CompressionType_NONE, BatchBuilder: "KEY_BASED", MaxPendingMessages: 9},
			pulsar.ProducerOptions{Topic: "o", Properties: props, CompressionType: pulsar.NoCompression,
				BatchingMaxPublishDelay: 10 * time.Millisecond, BatcherBuilderType: pulsar.KeyBasedBatchBuilder, MaxPendingMessages: 9}},
		{"snappy falls back to lz4; batching spec", &pb.ProducerSpec{CompressionType: pb.CompressionType_SNAPPY, BatchBuilder: "KEY_BASED",
			BatchingSpec: &pb.BatchingSpec{Enabled: true, BatchingMaxPublishDelayMs: 3, BatchingMaxMessages: 4, BatchingMaxBytes: 5, BatchBuilder: "DEFAULT"}},
			pulsar.ProducerOptions{Topic: "o", Properties: props, CompressionType: pulsar.LZ4,
				BatchingMaxPublishDelay: 3 * time.Millisecond, BatchingMaxMessages: 4, BatchingMaxSize: 5}},
		{"batching disabled, zstd", &pb.ProducerSpec{CompressionType: pb.CompressionType_ZSTD, BatchingSpec: &pb.BatchingSpec{}},
			pulsar.ProducerOptions{Topic: "o", Properties: props, CompressionType: pulsar.ZSTD,
				BatchingMaxPublishDelay: 10 * time.Millisecond, DisableBatching: true}},
		{"zlib", &pb.ProducerSpec{CompressionType: pb.CompressionType_ZLIB},
			pulsar.ProducerOptions{Topic: "o", Properties: props, CompressionType: pulsar.ZLib,
				BatchingMaxPublishDelay: 10 * time.Millisecond}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, producerOptions("o", tc.spec, info))
			// A reply-to producer differs only in batching for 1 ms at most.
			reply := tc.want
			reply.BatchingMaxPublishDelay = min(reply.BatchingMaxPublishDelay, time.Millisecond)
			assert.Equal(t, reply, replyProducerOptions("o", tc.spec, info))
		})
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	b := backoff{first: 100 * time.Millisecond, max: time.Second}
	for n, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		assert.Equal(t, want*time.Millisecond, b.Next(uint32(n)), "redelivery %d", n)
	}
	assert.Equal(t, time.Second, b.Next(1_000_000))
}
