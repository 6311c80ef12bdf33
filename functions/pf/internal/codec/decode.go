package codec

import (
	"fmt"
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/fnhost/fnhost/functions/pf/plugin/pluginpb"
)

// The decoders follow the protobuf runtime's rules: fields in any order, unknown fields and
// known fields of an unexpected wire type skipped (and dropped: the receiver of a frame
// forwards nothing), the last value of a scalar field kept, a
// repeated message field appended to, a message field seen twice merged, a oneof replaced by
// a different member, strings checked for UTF-8. Bytes are copied: the input is gRPC's buffer,
// reused after Unmarshal.

// field reads one field's tag. On a field it does not want, the caller calls skip.
func field(b []byte) (protowire.Number, protowire.Type, []byte, error) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, nil, protowire.ParseError(n)
	}
	if !num.IsValid() {
		return 0, 0, nil, fmt.Errorf("codec: invalid field number %d", num)
	}
	return num, typ, b[n:], nil
}

func skip(b []byte, num protowire.Number, typ protowire.Type) ([]byte, error) {
	n := protowire.ConsumeFieldValue(num, typ, b)
	if n < 0 {
		return nil, protowire.ParseError(n)
	}
	return b[n:], nil
}

func consumeBytes(b []byte) (v, rest []byte, err error) {
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return nil, nil, protowire.ParseError(n)
	}
	return v, b[n:], nil
}

func consumeVarint(b []byte) (uint64, []byte, error) {
	v, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return 0, nil, protowire.ParseError(n)
	}
	return v, b[n:], nil
}

func consumeFixed64(b []byte) (uint64, []byte, error) {
	v, n := protowire.ConsumeFixed64(b)
	if n < 0 {
		return 0, nil, protowire.ParseError(n)
	}
	return v, b[n:], nil
}

func consumeString(b []byte, name string) (string, []byte, error) {
	v, rest, err := consumeBytes(b)
	if err != nil {
		return "", nil, err
	}
	if !utf8.Valid(v) {
		return "", nil, fmt.Errorf("codec: string field %s contains invalid UTF-8", name)
	}
	return string(v), rest, nil
}

// copyBytes copies v; an empty field is an empty, non-nil slice, as the protobuf runtime
// decodes it.
func copyBytes(v []byte) []byte { return append(make([]byte, 0, len(v)), v...) }

// decodeMapEntry adds one map<string, string> entry to *m.
func decodeMapEntry(b []byte, m *map[string]string, name string) error {
	var k, v string
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return err
		}
		switch {
		case num == 1 && typ == protowire.BytesType:
			k, b, err = consumeString(rest, name)
		case num == 2 && typ == protowire.BytesType:
			v, b, err = consumeString(rest, name)
		default:
			b, err = skip(rest, num, typ)
		}
		if err != nil {
			return err
		}
	}
	if *m == nil {
		*m = map[string]string{}
	}
	(*m)[k] = v
	return nil
}

// decodeEmpty checks a message without fields (Ack, Cancel): whatever it holds is unknown.
func decodeEmpty(b []byte) error {
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return err
		}
		if b, err = skip(rest, num, typ); err != nil {
			return err
		}
	}
	return nil
}

// count returns how many times the length-delimited field 1, the repeated field of a frame,
// occurs in b; the decoder allocates the frame's messages in one go. A malformed b gives a
// count the decoder then fails on.
func count(b []byte) int {
	n := 0
	for len(b) > 0 {
		num, typ, m := protowire.ConsumeField(b)
		if m < 0 {
			break
		}
		if num == 1 && typ == protowire.BytesType {
			n++
		}
		b = b[m:]
	}
	return n
}

// invokeSlab holds the messages of one decoded invocation request, allocated together.
type invokeSlab struct {
	req    pluginpb.PipelineRequest
	invoke pluginpb.PipelineRequest_Invoke
	body   pluginpb.InvokeRequest
}

// interner returns the strings of a frame's fields, reusing the previous one when the bytes
// repeat: the requests of a frame mostly share their topic and producer name.
type interner struct{ topic, producer string }

// string consumes a string field like consumeString, returning *prev when it repeats.
func (in *interner) string(prev *string, b []byte, name string) (string, []byte, error) {
	v, rest, err := consumeBytes(b)
	if err != nil {
		return "", nil, err
	}
	if string(v) == *prev { // compared in place, without a conversion
		return *prev, rest, nil
	}
	if !utf8.Valid(v) {
		return "", nil, fmt.Errorf("codec: string field %s contains invalid UTF-8", name)
	}
	*prev = string(v)
	return *prev, rest, nil
}

func decodeRequests(b []byte, m *pluginpb.PipelineRequests) error {
	slab := make([]invokeSlab, count(b))
	m.Requests = make([]*pluginpb.PipelineRequest, 0, len(slab))
	var in interner
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return err
		}
		if num != 1 || typ != protowire.BytesType {
			if b, err = skip(rest, num, typ); err != nil {
				return err
			}
			continue
		}
		var v []byte
		if v, b, err = consumeBytes(rest); err != nil {
			return err
		}
		var sl *invokeSlab
		if i := len(m.Requests); i < len(slab) {
			sl = &slab[i]
		} else {
			sl = &invokeSlab{} // count was wrong: the decoder fails further on
		}
		r := &sl.req
		if err := decodeRequest(v, sl, &in); err != nil {
			return err
		}
		m.Requests = append(m.Requests, r)
	}
	return nil
}

func decodeRequest(b []byte, sl *invokeSlab, in *interner) error {
	r := &sl.req
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return err
		}
		switch {
		case num == 1 && typ == protowire.VarintType:
			r.Id, b, err = consumeVarint(rest)
		case num == 2 && typ == protowire.BytesType:
			var v []byte
			if v, b, err = consumeBytes(rest); err != nil {
				return err
			}
			x, ok := r.Request.(*pluginpb.PipelineRequest_Invoke)
			if !ok || x.Invoke == nil {
				x = &sl.invoke
				if x.Invoke != nil { // used already, then replaced by a cancel
					x = &pluginpb.PipelineRequest_Invoke{}
				}
				x.Invoke = &sl.body
				r.Request = x
			}
			err = decodeInvoke(v, x.Invoke, in)
		case num == 3 && typ == protowire.BytesType:
			var v []byte
			if v, b, err = consumeBytes(rest); err != nil {
				return err
			}
			if _, ok := r.Request.(*pluginpb.PipelineRequest_Cancel); !ok {
				r.Request = &pluginpb.PipelineRequest_Cancel{Cancel: &pluginpb.Cancel{}}
			}
			err = decodeEmpty(v)
		default:
			b, err = skip(rest, num, typ)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func decodeInvoke(b []byte, r *pluginpb.InvokeRequest, in *interner) error {
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return err
		}
		var (
			v []byte
			u uint64
		)
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, b, err = consumeBytes(rest)
			r.Payload = copyBytes(v)
		case num == 2 && typ == protowire.BytesType:
			r.Key, b, err = consumeString(rest, "key")
		case num == 3 && typ == protowire.BytesType:
			r.OrderingKey, b, err = consumeString(rest, "ordering_key")
		case num == 4 && typ == protowire.BytesType:
			if v, b, err = consumeBytes(rest); err == nil {
				err = decodeMapEntry(v, &r.Properties, "properties")
			}
		case num == 5 && typ == protowire.BytesType:
			r.Topic, b, err = in.string(&in.topic, rest, "topic")
		case num == 6 && typ == protowire.BytesType:
			r.ProducerName, b, err = in.string(&in.producer, rest, "producer_name")
		case num == 7 && typ == protowire.BytesType:
			v, b, err = consumeBytes(rest)
			r.MessageId = copyBytes(v)
		case num == 8 && typ == protowire.Fixed64Type:
			u, b, err = consumeFixed64(rest)
			r.EventTimeUnixNano = int64(u)
		case num == 9 && typ == protowire.Fixed64Type:
			u, b, err = consumeFixed64(rest)
			r.PublishTimeUnixNano = int64(u)
		case num == 10 && typ == protowire.VarintType:
			u, b, err = consumeVarint(rest)
			r.RedeliveryCount = uint32(u)
		case num == 11 && typ == protowire.Fixed64Type:
			u, b, err = consumeFixed64(rest)
			r.DeadlineUnixNano = int64(u)
		default:
			b, err = skip(rest, num, typ)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// eventSlab holds the messages of one decoded event, allocated together: the common events are
// Done with the returned output, and Output.
type eventSlab struct {
	pe      pluginpb.PipelineEvent
	ev      pluginpb.Event
	done    pluginpb.Event_Done
	d       pluginpb.Done
	out     pluginpb.Output
	outUsed bool
}

func (sl *eventSlab) output() *pluginpb.Output {
	if sl.outUsed {
		return &pluginpb.Output{}
	}
	sl.outUsed = true
	return &sl.out
}

func decodeEvents(b []byte, m *pluginpb.PipelineEvents) error {
	slab := make([]eventSlab, count(b))
	m.Events = make([]*pluginpb.PipelineEvent, 0, len(slab))
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return err
		}
		if num != 1 || typ != protowire.BytesType {
			if b, err = skip(rest, num, typ); err != nil {
				return err
			}
			continue
		}
		var v []byte
		if v, b, err = consumeBytes(rest); err != nil {
			return err
		}
		var sl *eventSlab
		if i := len(m.Events); i < len(slab) {
			sl = &slab[i]
		} else {
			sl = &eventSlab{} // count was wrong: the decoder fails further on
		}
		if err := decodePipelineEvent(v, sl); err != nil {
			return err
		}
		m.Events = append(m.Events, &sl.pe)
	}
	return nil
}

func decodePipelineEvent(b []byte, sl *eventSlab) error {
	pe := &sl.pe
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return err
		}
		switch {
		case num == 1 && typ == protowire.VarintType:
			pe.Id, b, err = consumeVarint(rest)
		case num == 2 && typ == protowire.BytesType:
			var v []byte
			if v, b, err = consumeBytes(rest); err != nil {
				return err
			}
			pe.Event = &sl.ev
			err = decodeEvent(v, pe.Event, sl)
		default:
			b, err = skip(rest, num, typ)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func decodeEvent(b []byte, ev *pluginpb.Event, sl *eventSlab) error {
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return err
		}
		if typ != protowire.BytesType || num < 1 || num > 4 {
			if b, err = skip(rest, num, typ); err != nil {
				return err
			}
			continue
		}
		var v []byte
		if v, b, err = consumeBytes(rest); err != nil {
			return err
		}
		switch num {
		case 1:
			x, ok := ev.Event.(*pluginpb.Event_Output)
			if !ok || x.Output == nil {
				x = &pluginpb.Event_Output{Output: sl.output()}
				ev.Event = x
			}
			err = decodeOutput(v, x.Output)
		case 2:
			x, ok := ev.Event.(*pluginpb.Event_Metric)
			if !ok || x.Metric == nil {
				x = &pluginpb.Event_Metric{Metric: &pluginpb.Metric{}}
				ev.Event = x
			}
			err = decodeMetric(v, x.Metric)
		case 3:
			if _, ok := ev.Event.(*pluginpb.Event_Ack); !ok {
				ev.Event = &pluginpb.Event_Ack{Ack: &pluginpb.Ack{}}
			}
			err = decodeEmpty(v)
		case 4:
			x, ok := ev.Event.(*pluginpb.Event_Done)
			if !ok || x.Done == nil {
				if sl.done.Done == nil {
					x = &sl.done
					x.Done = &sl.d
				} else {
					x = &pluginpb.Event_Done{Done: &pluginpb.Done{}}
				}
				ev.Event = x
			}
			err = decodeDone(v, x.Done, sl)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func decodeOutput(b []byte, o *pluginpb.Output) error {
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return err
		}
		var (
			v []byte
			u uint64
		)
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, b, err = consumeBytes(rest)
			o.Payload = copyBytes(v)
		case num == 2 && typ == protowire.BytesType:
			o.Key, b, err = consumeString(rest, "key")
		case num == 3 && typ == protowire.BytesType:
			if v, b, err = consumeBytes(rest); err == nil {
				err = decodeMapEntry(v, &o.Properties, "properties")
			}
		case num == 4 && typ == protowire.Fixed64Type:
			u, b, err = consumeFixed64(rest)
			o.EventTimeUnixNano = int64(u)
		default:
			b, err = skip(rest, num, typ)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func decodeMetric(b []byte, m *pluginpb.Metric) error {
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return err
		}
		switch {
		case num == 1 && typ == protowire.BytesType:
			m.Name, b, err = consumeString(rest, "name")
		case num == 2 && typ == protowire.Fixed64Type:
			var u uint64
			u, b, err = consumeFixed64(rest)
			m.Value = math.Float64frombits(u)
		default:
			b, err = skip(rest, num, typ)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func decodeDone(b []byte, d *pluginpb.Done, sl *eventSlab) error {
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return err
		}
		switch {
		case num == 1 && typ == protowire.VarintType:
			var u uint64
			u, b, err = consumeVarint(rest)
			d.Kind = pluginpb.ErrorKind(int32(u))
		case num == 2 && typ == protowire.BytesType:
			d.Error, b, err = consumeString(rest, "error")
		case num == 3 && typ == protowire.BytesType:
			d.Stack, b, err = consumeString(rest, "stack")
		case num == 4 && typ == protowire.BytesType:
			var v []byte
			if v, b, err = consumeBytes(rest); err != nil {
				return err
			}
			if d.Output == nil {
				d.Output = sl.output()
			}
			err = decodeOutput(v, d.Output)
		default:
			b, err = skip(rest, num, typ)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
