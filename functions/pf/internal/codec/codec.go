// Package codec is the gRPC codec of the fnhost plugin protocol. It encodes the two messages of
// the Pipeline stream, pluginpb.PipelineRequests and pluginpb.PipelineEvents, by hand, and
// every other message with gRPC's standard protobuf codec.
//
// The bytes are the protobuf encoding of the same messages (function.proto): a peer that uses
// the standard codec reads and writes them alike, so the wire protocol does not change. The hand
// encoding exists because the pipeline frames are on the serial path of every invocation (one
// goroutine per direction and side encodes or decodes all of them), and the reflective
// protobuf runtime spent a fifth of that path on them, much of it on the oneof fields.
package codec

import (
	"fmt"
	"math"
	"unicode/utf8"

	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/fnhost/fnhost/functions/pf/plugin/pluginpb"
)

// Codec is the plugin protocol's encoding.CodecV2. Pass it to the gRPC server with
// grpc.ForceServerCodecV2 and to the client with grpc.ForceCodecV2. It is safe for concurrent
// use.
type Codec struct{}

var _ encoding.CodecV2 = Codec{}

// std is gRPC's protobuf codec, for every other message (go-plugin's own services among
// them); importing grpc/encoding/proto registers it.
func std() encoding.CodecV2 { return encoding.GetCodecV2(grpcproto.Name) }

// Name is the standard codec's: the content-subtype on the wire stays application/grpc+proto.
func (Codec) Name() string { return grpcproto.Name }

// Marshal encodes v.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	size, fill, ok := handEncoding(v)
	if !ok {
		return std().Marshal(v)
	}
	if mem.IsBelowBufferPoolingThreshold(size) {
		b, err := fill(make([]byte, 0, size))
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	b, err := fill((*buf)[:0])
	if err != nil {
		pool.Put(buf)
		return nil, err
	}
	*buf = b
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// handEncoding returns the size of v's encoding and a function that appends it, when v is one of
// the two messages encoded by hand (ok false otherwise).
func handEncoding(v any) (size int, fill func([]byte) ([]byte, error), ok bool) {
	switch m := v.(type) {
	case *pluginpb.PipelineRequests:
		sizes := make([]int, len(m.GetRequests()))
		return sizeRequests(m, sizes), func(b []byte) ([]byte, error) { return appendRequests(b, m, sizes) }, true
	case *pluginpb.PipelineEvents:
		sizes := make([]eventSizes, len(m.GetEvents()))
		return sizeEvents(m, sizes), func(b []byte) ([]byte, error) { return appendEvents(b, m, sizes) }, true
	}
	return 0, nil, false
}

// Unmarshal decodes data into v, which it resets first.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	switch v.(type) {
	case *pluginpb.PipelineRequests, *pluginpb.PipelineEvents:
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		defer buf.Free()
		return DecodeFrame(buf.ReadOnlyData(), v)
	}
	return std().Unmarshal(data, v)
}

// --- sizes. The sizes of nested messages are computed once, bottom up, and kept for the
// length prefixes.

// nested is the size of a length-delimited field with a payload of n bytes, tag included.
func nested(n int) int { return 1 + protowire.SizeVarint(uint64(n)) + n }

func sizeBytes(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	return nested(len(b))
}

func sizeString(s string) int {
	if s == "" {
		return 0
	}
	return nested(len(s))
}

func sizeVarint(v uint64) int {
	if v == 0 {
		return 0
	}
	return 1 + protowire.SizeVarint(v)
}

func sizeFixed64(v int64) int {
	if v == 0 {
		return 0
	}
	return 1 + 8
}

// sizeMap is the size of a map<string, string> field: one entry message per pair, holding
// both its key and its value, as the protobuf runtime writes them.
func sizeMap(m map[string]string) int {
	n := 0
	for k, v := range m {
		n += nested(nested(len(k)) + nested(len(v)))
	}
	return n
}

func sizeInvoke(r *pluginpb.InvokeRequest) int {
	return sizeBytes(r.GetPayload()) + sizeString(r.GetKey()) + sizeString(r.GetOrderingKey()) + sizeMap(r.GetProperties()) +
		sizeString(r.GetTopic()) + sizeString(r.GetProducerName()) + sizeBytes(r.GetMessageId()) +
		sizeFixed64(r.GetEventTimeUnixNano()) + sizeFixed64(r.GetPublishTimeUnixNano()) +
		sizeVarint(uint64(r.GetRedeliveryCount())) + sizeFixed64(r.GetDeadlineUnixNano())
}

// sizeRequests returns the size of m and sets sizes[i] to the size of request i's oneof
// payload (InvokeRequest or Cancel).
func sizeRequests(m *pluginpb.PipelineRequests, sizes []int) int {
	n := 0
	for i, r := range m.Requests {
		inner := 0
		switch x := r.GetRequest().(type) {
		case *pluginpb.PipelineRequest_Invoke:
			sizes[i] = sizeInvoke(x.Invoke)
			inner = nested(sizes[i])
		case *pluginpb.PipelineRequest_Cancel:
			inner = nested(0)
		}
		n += nested(sizeVarint(r.GetId()) + inner)
	}
	return n
}

func sizeOutput(o *pluginpb.Output) int {
	return sizeBytes(o.GetPayload()) + sizeString(o.GetKey()) + sizeMap(o.GetProperties()) + sizeFixed64(o.GetEventTimeUnixNano())
}

// eventSizes are the sizes of one PipelineEvent's nested messages.
type eventSizes struct {
	output int // the Output, either the event's or its Done's
	inner  int // the oneof's message: Output, Metric, Ack or Done
	event  int // the Event
}

func sizeEvents(m *pluginpb.PipelineEvents, sizes []eventSizes) int {
	n := 0
	for i, pe := range m.Events {
		s := &sizes[i]
		ev := pe.GetEvent()
		if ev != nil {
			s.inner = -1 // no oneof set
			switch x := ev.GetEvent().(type) {
			case *pluginpb.Event_Output:
				s.output = sizeOutput(x.Output)
				s.inner = s.output
			case *pluginpb.Event_Metric:
				s.inner = sizeString(x.Metric.GetName())
				if math.Float64bits(x.Metric.GetValue()) != 0 { // -0 too, as protobuf
					s.inner += 1 + 8
				}
			case *pluginpb.Event_Ack:
				s.inner = 0
			case *pluginpb.Event_Done:
				d := x.Done
				s.inner = sizeVarint(uint64(d.GetKind())) + sizeString(d.GetError()) + sizeString(d.GetStack())
				if d.GetOutput() != nil {
					s.output = sizeOutput(d.GetOutput())
					s.inner += nested(s.output)
				}
			}
			if s.inner >= 0 {
				s.event = nested(s.inner)
			}
		}
		body := sizeVarint(pe.GetId())
		if ev != nil {
			body += nested(s.event)
		}
		n += nested(body)
	}
	return n
}

// --- encoding

func appendTag(b []byte, num protowire.Number, typ protowire.Type) []byte {
	return protowire.AppendTag(b, num, typ)
}

func appendLen(b []byte, num protowire.Number, n int) []byte {
	return protowire.AppendVarint(appendTag(b, num, protowire.BytesType), uint64(n))
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	return append(appendLen(b, num, len(v)), v...)
}

func appendString(b []byte, num protowire.Number, field, v string) ([]byte, error) {
	if v == "" {
		return b, nil
	}
	if !utf8.ValidString(v) {
		return b, fmt.Errorf("codec: string field %s contains invalid UTF-8", field)
	}
	return append(appendLen(b, num, len(v)), v...), nil
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendVarint(appendTag(b, num, protowire.VarintType), v)
}

func appendFixed64(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendFixed64(appendTag(b, num, protowire.Fixed64Type), v)
}

func appendMap(b []byte, num protowire.Number, field string, m map[string]string) ([]byte, error) {
	for k, v := range m {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return b, fmt.Errorf("codec: map field %s contains invalid UTF-8", field)
		}
		b = appendLen(b, num, nested(len(k))+nested(len(v)))
		b = append(appendLen(b, 1, len(k)), k...)
		b = append(appendLen(b, 2, len(v)), v...)
	}
	return b, nil
}

func appendInvoke(b []byte, r *pluginpb.InvokeRequest) ([]byte, error) {
	var err error
	b = appendBytes(b, 1, r.GetPayload())
	if b, err = appendString(b, 2, "key", r.GetKey()); err != nil {
		return b, err
	}
	if b, err = appendString(b, 3, "ordering_key", r.GetOrderingKey()); err != nil {
		return b, err
	}
	if b, err = appendMap(b, 4, "properties", r.GetProperties()); err != nil {
		return b, err
	}
	if b, err = appendString(b, 5, "topic", r.GetTopic()); err != nil {
		return b, err
	}
	if b, err = appendString(b, 6, "producer_name", r.GetProducerName()); err != nil {
		return b, err
	}
	b = appendBytes(b, 7, r.GetMessageId())
	b = appendFixed64(b, 8, uint64(r.GetEventTimeUnixNano()))
	b = appendFixed64(b, 9, uint64(r.GetPublishTimeUnixNano()))
	b = appendVarint(b, 10, uint64(r.GetRedeliveryCount()))
	b = appendFixed64(b, 11, uint64(r.GetDeadlineUnixNano()))
	return b, nil
}

func appendRequests(b []byte, m *pluginpb.PipelineRequests, sizes []int) ([]byte, error) {
	var err error
	for i, r := range m.Requests {
		inner := 0
		switch r.GetRequest().(type) {
		case *pluginpb.PipelineRequest_Invoke:
			inner = nested(sizes[i])
		case *pluginpb.PipelineRequest_Cancel:
			inner = nested(0)
		}
		b = appendLen(b, 1, sizeVarint(r.GetId())+inner)
		b = appendVarint(b, 1, r.GetId())
		switch x := r.GetRequest().(type) {
		case *pluginpb.PipelineRequest_Invoke:
			b = appendLen(b, 2, sizes[i])
			if b, err = appendInvoke(b, x.Invoke); err != nil {
				return b, err
			}
		case *pluginpb.PipelineRequest_Cancel:
			b = appendLen(b, 3, 0)
		}
	}
	return b, nil
}

func appendOutput(b []byte, o *pluginpb.Output) ([]byte, error) {
	var err error
	b = appendBytes(b, 1, o.GetPayload())
	if b, err = appendString(b, 2, "key", o.GetKey()); err != nil {
		return b, err
	}
	if b, err = appendMap(b, 3, "properties", o.GetProperties()); err != nil {
		return b, err
	}
	return appendFixed64(b, 4, uint64(o.GetEventTimeUnixNano())), nil
}

func appendEvents(b []byte, m *pluginpb.PipelineEvents, sizes []eventSizes) ([]byte, error) {
	var err error
	for i, pe := range m.Events {
		s := sizes[i]
		ev := pe.GetEvent()
		body := sizeVarint(pe.GetId())
		if ev != nil {
			body += nested(s.event)
		}
		b = appendLen(b, 1, body)
		b = appendVarint(b, 1, pe.GetId())
		if ev == nil {
			continue
		}
		b = appendLen(b, 2, s.event)
		switch x := ev.GetEvent().(type) {
		case *pluginpb.Event_Output:
			b = appendLen(b, 1, s.inner)
			if b, err = appendOutput(b, x.Output); err != nil {
				return b, err
			}
		case *pluginpb.Event_Metric:
			b = appendLen(b, 2, s.inner)
			if b, err = appendString(b, 1, "name", x.Metric.GetName()); err != nil {
				return b, err
			}
			if v := x.Metric.GetValue(); math.Float64bits(v) != 0 {
				b = protowire.AppendFixed64(appendTag(b, 2, protowire.Fixed64Type), math.Float64bits(v))
			}
		case *pluginpb.Event_Ack:
			b = appendLen(b, 3, 0)
		case *pluginpb.Event_Done:
			d := x.Done
			b = appendLen(b, 4, s.inner)
			b = appendVarint(b, 1, uint64(d.GetKind()))
			if b, err = appendString(b, 2, "error", d.GetError()); err != nil {
				return b, err
			}
			if b, err = appendString(b, 3, "stack", d.GetStack()); err != nil {
				return b, err
			}
			if d.GetOutput() != nil {
				b = appendLen(b, 4, s.output)
				if b, err = appendOutput(b, d.GetOutput()); err != nil {
					return b, err
				}
			}
		}
	}
	return b, nil
}
