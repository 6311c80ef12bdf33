package instance

import (
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
	pb "github.com/fnhost/fnhost/functions/pf/internal/pfproto"
	"github.com/fnhost/fnhost/functions/pf/invocation"
)

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

func TestOutputMessage(t *testing.T) {
	t.Parallel()
	inTime := time.UnixMilli(1_700_000_000_000)
	in := &call.Message{
		TopicName: "persistent://public/default/in",
		MsgID:     pulsar.NewMessageID(33, 1, 0, 0),
		MsgKey:    "k1",
		OrderKey:  "ok1",
		Event:     inTime,
		Props: map[string]string{
			"a": "1", invocation.InputTopic: "spoofed", invocation.ReplyTo: "reply", invocation.Deadline: "1",
			invocation.ID: "inv", invocation.Seq: "9", invocation.Final: "true",
		},
	}
	wantID := invocation.MessageID(in)
	tests := []struct {
		name    string
		out     call.Output
		forward bool
		want    *pulsar.ProducerMessage
	}{
		{
			name:    "forwarded",
			out:     call.Output{Payload: []byte("x")},
			forward: true,
			want: &pulsar.ProducerMessage{Payload: []byte("x"), Key: "k1", OrderingKey: "ok1", EventTime: inTime,
				Properties: map[string]string{"a": "1", invocation.ID: "inv",
					invocation.InputTopic: "persistent://public/default/in", invocation.InputMessageID: wantID}},
		},
		{
			name: "own key, properties and event time",
			out: call.Output{Payload: []byte("y"), Key: "k2", EventTime: inTime.Add(time.Hour),
				Properties: map[string]string{"a": "2", "b": "3", invocation.InputMessageID: "spoofed"}},
			forward: true,
			want: &pulsar.ProducerMessage{Payload: []byte("y"), Key: "k2", EventTime: inTime.Add(time.Hour),
				Properties: map[string]string{"a": "2", "b": "3", invocation.ID: "inv",
					invocation.InputTopic: "persistent://public/default/in", invocation.InputMessageID: wantID}},
		},
		{
			name: "not forwarded",
			out:  call.Output{Payload: []byte("z")},
			want: &pulsar.ProducerMessage{Payload: []byte("z"), Key: "k1", OrderingKey: "ok1", EventTime: inTime,
				Properties: map[string]string{
					invocation.InputTopic: "persistent://public/default/in", invocation.InputMessageID: wantID}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, outputMessage(in, tc.out, tc.forward))
		})
	}
}

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

func TestTransient(t *testing.T) {
	t.Parallel()
	assert.True(t, transient(pulsar.ErrSendTimeout))
	assert.True(t, transient(pulsar.ErrSendQueueIsFull))
	assert.False(t, transient(pulsar.ErrMessageTooLarge))
	assert.False(t, transient(pulsar.ErrProducerClosed))
}
