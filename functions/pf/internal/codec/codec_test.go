package codec

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protopath"
	"google.golang.org/protobuf/reflect/protorange"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/fnhost/fnhost/functions/pf/plugin/pluginpb"
)

func requests() *pluginpb.PipelineRequests {
	return &pluginpb.PipelineRequests{Requests: []*pluginpb.PipelineRequest{
		{Id: 1, Request: &pluginpb.PipelineRequest_Invoke{Invoke: &pluginpb.InvokeRequest{
			Payload: []byte("hello"), Key: "k", OrderingKey: "ok", Properties: map[string]string{"a": "1"},
			Topic: "persistent://public/default/in", ProducerName: "p", MessageId: []byte{8, 1, 16, 2},
			EventTimeUnixNano: 1, PublishTimeUnixNano: -2, RedeliveryCount: 3, DeadlineUnixNano: math.MaxInt64,
		}}},
		{Id: 2, Request: &pluginpb.PipelineRequest_Invoke{Invoke: &pluginpb.InvokeRequest{}}},
		{Id: 3, Request: &pluginpb.PipelineRequest_Cancel{Cancel: &pluginpb.Cancel{}}},
		{Id: 0},
		{Id: math.MaxUint64, Request: &pluginpb.PipelineRequest_Invoke{Invoke: &pluginpb.InvokeRequest{
			Payload: make([]byte, 300), Properties: map[string]string{"": ""},
		}}},
	}}
}

func events() *pluginpb.PipelineEvents {
	out := &pluginpb.Output{Payload: []byte("out"), Key: "k", Properties: map[string]string{"x": "y"}, EventTimeUnixNano: 42}
	return &pluginpb.PipelineEvents{Events: []*pluginpb.PipelineEvent{
		{Id: 1, Event: &pluginpb.Event{Event: &pluginpb.Event_Output{Output: out}}},
		{Id: 1, Event: &pluginpb.Event{Event: &pluginpb.Event_Output{Output: &pluginpb.Output{}}}},
		{Id: 2, Event: &pluginpb.Event{Event: &pluginpb.Event_Metric{Metric: &pluginpb.Metric{Name: "m", Value: 1.5}}}},
		{Id: 2, Event: &pluginpb.Event{Event: &pluginpb.Event_Metric{Metric: &pluginpb.Metric{}}}},
		{Id: 2, Event: &pluginpb.Event{Event: &pluginpb.Event_Metric{Metric: &pluginpb.Metric{Value: math.Copysign(0, -1)}}}},
		{Id: 3, Event: &pluginpb.Event{Event: &pluginpb.Event_Ack{Ack: &pluginpb.Ack{}}}},
		{Id: 4, Event: &pluginpb.Event{Event: &pluginpb.Event_Done{Done: &pluginpb.Done{}}}},
		{Id: 5, Event: &pluginpb.Event{Event: &pluginpb.Event_Done{Done: &pluginpb.Done{
			Kind: pluginpb.ErrorKind_ERROR_KIND_PANIC, Error: "boom", Stack: "goroutine 1", Output: out,
		}}}},
		{Id: 6, Event: &pluginpb.Event{}},
		{Id: 7},
	}}
}

// dropUnknown clears the unknown fields of m and its messages: the codec skips them, as the
// receiver of a pipeline frame has no use for them.
func dropUnknown(t testing.TB, m proto.Message) {
	t.Helper()
	err := protorange.Range(m.ProtoReflect(), func(v protopath.Values) error {
		if msg, ok := v.Index(-1).Value.Interface().(protoreflect.Message); ok {
			msg.SetUnknown(nil)
		}
		return nil
	})
	require.NoError(t, err)
}

func flat(t *testing.T, bs mem.BufferSlice) []byte {
	t.Helper()
	defer bs.Free()
	return bs.Materialize()
}

// TestMatchesProtobuf checks both directions against the protobuf runtime, and the bytes
// themselves (the messages have at most one map entry, so the order is fixed).
func TestMatchesProtobuf(t *testing.T) {
	t.Parallel()
	c := Codec{}
	tests := []struct {
		name  string
		msg   proto.Message
		empty func() proto.Message
	}{
		{"requests", requests(), func() proto.Message { return &pluginpb.PipelineRequests{} }},
		{"events", events(), func() proto.Message { return &pluginpb.PipelineEvents{} }},
		{"no requests", &pluginpb.PipelineRequests{}, func() proto.Message { return &pluginpb.PipelineRequests{} }},
		{"no events", &pluginpb.PipelineEvents{}, func() proto.Message { return &pluginpb.PipelineEvents{} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want, err := proto.MarshalOptions{Deterministic: true}.Marshal(tc.msg)
			require.NoError(t, err)
			bs, err := c.Marshal(tc.msg)
			require.NoError(t, err)
			got := flat(t, bs)
			assert.Equal(t, string(want), string(got), "bytes")

			std := tc.empty()
			require.NoError(t, proto.Unmarshal(got, std))
			assert.True(t, proto.Equal(tc.msg, std), "protobuf decodes ours: %v", std)

			ours := tc.empty()
			require.NoError(t, c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(want)}, ours))
			assert.True(t, proto.Equal(tc.msg, ours), "ours decodes protobuf's: %v", ours)

			// The data socket's frame: the same bytes behind their length.
			fr, err := AppendFrame([]byte("x"), tc.msg)
			require.NoError(t, err)
			require.Equal(t, "x", string(fr[:1]), "appended")
			assert.Equal(t, uint32(len(want)), FrameSize(fr[1:1+FrameHeader]))
			assert.Equal(t, string(want), string(fr[1+FrameHeader:]))
			framed := tc.empty()
			require.NoError(t, DecodeFrame(fr[1+FrameHeader:], framed))
			assert.True(t, proto.Equal(tc.msg, framed), "DecodeFrame: %v", framed)
		})
	}
	_, err := AppendFrame(nil, &pluginpb.Event{})
	require.Error(t, err, "not a pipeline frame")
	require.Error(t, DecodeFrame(nil, &pluginpb.Event{}))
}

// TestDecodeLikeProtobuf feeds both decoders encodings the hand encoder never writes.
func TestDecodeLikeProtobuf(t *testing.T) {
	t.Parallel()
	c := Codec{}
	inner, err := proto.Marshal(&pluginpb.InvokeRequest{Payload: []byte("a"), Key: "k"})
	require.NoError(t, err)
	// An unknown varint field, a known field with the wrong wire type, a repeated scalar, a
	// second map entry, and the invoke message in two parts (merged).
	extra := protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 7)
	extra = protowire.AppendVarint(protowire.AppendTag(extra, 2, protowire.VarintType), 1)
	extra = protowire.AppendFixed64(protowire.AppendTag(extra, 8, protowire.Fixed64Type), 5)
	extra = protowire.AppendFixed64(protowire.AppendTag(extra, 8, protowire.Fixed64Type), 6)
	entry := protowire.AppendString(protowire.AppendTag(nil, 2, protowire.BytesType), "v")
	extra = protowire.AppendBytes(protowire.AppendTag(extra, 4, protowire.BytesType), entry)
	part2 := protowire.AppendString(protowire.AppendTag(nil, 5, protowire.BytesType), "topic")
	req := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 9)
	req = protowire.AppendBytes(protowire.AppendTag(req, 2, protowire.BytesType), append(inner, extra...))
	req = protowire.AppendBytes(protowire.AppendTag(req, 2, protowire.BytesType), part2)
	frame := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), req)
	frame = protowire.AppendVarint(protowire.AppendTag(frame, 2, protowire.VarintType), 1)

	want := &pluginpb.PipelineRequests{}
	require.NoError(t, proto.Unmarshal(frame, want))
	dropUnknown(t, want)
	got := &pluginpb.PipelineRequests{Requests: []*pluginpb.PipelineRequest{{Id: 1}}} // reset first
	require.NoError(t, c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(frame)}, got))
	assert.True(t, proto.Equal(want, got), "got %v, want %v", got, want)
	assert.Equal(t, "topic", got.Requests[0].GetInvoke().GetTopic())
	assert.Equal(t, map[string]string{"": "v"}, got.Requests[0].GetInvoke().GetProperties())
}

func TestErrors(t *testing.T) {
	t.Parallel()
	c := Codec{}
	bad := string([]byte{0xff})
	tests := []struct {
		name string
		msg  any
	}{
		{"invalid UTF-8 key", &pluginpb.PipelineRequests{Requests: []*pluginpb.PipelineRequest{
			{Request: &pluginpb.PipelineRequest_Invoke{Invoke: &pluginpb.InvokeRequest{Key: bad}}}}}},
		{"invalid UTF-8 property", &pluginpb.PipelineEvents{Events: []*pluginpb.PipelineEvent{
			{Event: &pluginpb.Event{Event: &pluginpb.Event_Output{Output: &pluginpb.Output{Properties: map[string]string{"a": bad}}}}}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := c.Marshal(tc.msg)
			assert.Error(t, err)
		})
	}
	t.Run("truncated", func(t *testing.T) {
		t.Parallel()
		b, err := proto.Marshal(events())
		require.NoError(t, err)
		for n := 1; n < len(b); n += 7 {
			var ours, std pluginpb.PipelineEvents
			oursErr := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b[:n])}, &ours)
			stdErr := proto.Unmarshal(b[:n], &std)
			assert.Equal(t, stdErr != nil, oursErr != nil, "prefix of %d bytes: ours %v, protobuf %v", n, oursErr, stdErr)
		}
	})
	t.Run("other messages use protobuf", func(t *testing.T) {
		t.Parallel()
		bs, err := c.Marshal(&pluginpb.HealthResponse{Serving: true, Served: 3})
		require.NoError(t, err)
		var h pluginpb.HealthResponse
		require.NoError(t, c.Unmarshal(bs, &h))
		assert.Equal(t, uint64(3), h.GetServed())
	})
}

func FuzzDecode(f *testing.F) {
	for _, m := range []proto.Message{requests(), events()} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	c := Codec{}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, pair := range [][2]proto.Message{
			{&pluginpb.PipelineRequests{}, &pluginpb.PipelineRequests{}},
			{&pluginpb.PipelineEvents{}, &pluginpb.PipelineEvents{}},
		} {
			ours, std := pair[0], pair[1]
			oursErr := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, ours)
			stdErr := proto.Unmarshal(b, std)
			if (oursErr != nil) != (stdErr != nil) {
				t.Fatalf("ours %v, protobuf %v", oursErr, stdErr)
			}
			if stdErr == nil {
				dropUnknown(t, std)
			}
			if stdErr == nil && !proto.Equal(ours, std) {
				t.Fatalf("ours %v, protobuf %v", ours, std)
			}
		}
	})
}

// frame is a pipeline frame of 64 invocations of 100 bytes, as the runtime sends them.
func frame() (*pluginpb.PipelineRequests, *pluginpb.PipelineEvents) {
	reqs, evs := &pluginpb.PipelineRequests{}, &pluginpb.PipelineEvents{}
	for i := range 64 {
		reqs.Requests = append(reqs.Requests, &pluginpb.PipelineRequest{Id: uint64(i + 1), Request: &pluginpb.PipelineRequest_Invoke{
			Invoke: &pluginpb.InvokeRequest{Payload: make([]byte, 100), Topic: "persistent://public/default/in", ProducerName: "standalone-0-1",
				MessageId: []byte{8, 12, 16, 200, 1, 32, 5}, PublishTimeUnixNano: 1e18, DeadlineUnixNano: 2e18},
		}})
		evs.Events = append(evs.Events, &pluginpb.PipelineEvent{Id: uint64(i + 1), Event: &pluginpb.Event{Event: &pluginpb.Event_Done{
			Done: &pluginpb.Done{Output: &pluginpb.Output{Payload: make([]byte, 100)}},
		}}})
	}
	return reqs, evs
}

func BenchmarkCodec(b *testing.B) {
	reqs, evs := frame()
	for _, c := range []struct {
		name  string
		codec encoding.CodecV2
	}{{"hand", Codec{}}, {"protobuf", std()}} {
		for _, m := range []struct {
			name  string
			msg   any
			empty func() any
		}{
			{"requests", reqs, func() any { return &pluginpb.PipelineRequests{} }},
			{"events", evs, func() any { return &pluginpb.PipelineEvents{} }},
		} {
			b.Run(c.name+"/"+m.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					bs, err := c.codec.Marshal(m.msg)
					if err != nil {
						b.Fatal(err)
					}
					if err := c.codec.Unmarshal(bs, m.empty()); err != nil {
						b.Fatal(err)
					}
					bs.Free()
				}
			})
		}
	}
}
