package pluginserve

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
	"github.com/fnhost/fnhost/functions/pf/plugin/pluginpb"
)

// sink delivers the events of one invocation to the host.
type sink interface {
	// send hands ev over, waiting while the stream is full, until ctx or the stream ends.
	// It is called with the invocation's mutex held, so never concurrently for one sink.
	send(ctx context.Context, ev *pluginpb.Event) error
	// finish hands over the returned output (nil for none) and then done, as send does.
	finish(ctx context.Context, out *pluginpb.Output, done *pluginpb.Event) error
}

// unarySink writes to an Invoke stream.
type unarySink struct {
	stream pluginpb.Function_InvokeServer
}

func (u *unarySink) send(_ context.Context, ev *pluginpb.Event) error { return u.stream.Send(ev) }

// finish sends the returned output as an Output event, then Done.
func (u *unarySink) finish(ctx context.Context, out *pluginpb.Output, done *pluginpb.Event) error {
	if out != nil {
		if err := u.send(ctx, &pluginpb.Event{Event: &pluginpb.Event_Output{Output: out}}); err != nil {
			return err
		}
	}
	return u.send(ctx, done)
}

// pipelineSink queues events, tagged with the invocation's id, for the pipeline's sender.
type pipelineSink struct {
	id     uint64
	out    *eventQueue
	stream context.Context // ends when the pipeline does
	final  pluginpb.PipelineEvent
}

func (p *pipelineSink) send(ctx context.Context, ev *pluginpb.Event) error {
	return p.out.push(ctx, p.stream, &pluginpb.PipelineEvent{Id: p.id, Event: ev})
}

// finish sends the returned output inside Done (Done.output): one event, not two.
func (p *pipelineSink) finish(ctx context.Context, out *pluginpb.Output, done *pluginpb.Event) error {
	if out != nil {
		done.GetDone().Output = out
	}
	p.final.Id, p.final.Event = p.id, done
	return p.out.push(ctx, p.stream, &p.final)
}

// invocation is one running invocation: it orders its events and refuses any after Done.
type invocation struct {
	sink   sink
	stream context.Context // the stream's context, for events that must not be lost to a deadline
	logger *slog.Logger

	mu       sync.Mutex
	finished bool
}

func (inv *invocation) send(ctx context.Context, ev *pluginpb.Event) error {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.finished {
		return errFinished
	}
	return inv.sink.send(ctx, ev)
}

// finish sends the returned output, if any, and Done; nothing is sent after them.
func (inv *invocation) finish(out *pluginpb.Output, done *pluginpb.Event) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.finished = true
	if err := inv.sink.finish(inv.stream, out, done); err != nil {
		// The stream is gone; the host learns it from the stream, not from Done.
		inv.logger.Debug("dropping the result of an invocation", "err", err)
	}
}

// env is the call.Env of one invocation: RecordMetric becomes an event of the invocation.
type env struct {
	info      *call.Info
	logger    *slog.Logger
	producers *producers
	inv       *invocation
}

func (e *env) Info() *call.Info                               { return e.info }
func (e *env) Logger() *slog.Logger                           { return e.logger }
func (e *env) Producer(topic string) (pulsar.Producer, error) { return e.producers.get(topic) }

func (e *env) RecordMetric(name string, value float64) {
	err := e.inv.send(e.inv.stream, &pluginpb.Event{Event: &pluginpb.Event_Metric{Metric: &pluginpb.Metric{Name: name, Value: value}}})
	if err != nil {
		// RecordMetric has no error to return; a metric after the invocation is lost.
		e.logger.Debug("dropping a metric", "metric", name, "err", err)
	}
}

// record is what one invocation needs besides its context, allocated in one piece rather
// than a dozen: allocation and the garbage collections it brings were about a quarter of the
// plugin's CPU under load. It is not reused: the function may keep its Message.
type record struct {
	inv  invocation
	env  env
	ci   call.Invocation
	msg  inputMessage
	pipe pipelineSink // the sink in a pipeline
	// The returned output and Done.
	out  pluginpb.Output
	ev   pluginpb.Event
	done pluginpb.Event_Done
	d    pluginpb.Done
	// The request, and the invocation's context.
	req *pluginpb.InvokeRequest
	ctx invocationCtx
}

// newRecord returns the record of req, its context set up: values and stream as
// invocationCtx.init takes them.
func newRecord(values, stream context.Context, req *pluginpb.InvokeRequest) *record {
	rec := &record{req: req}
	rec.ctx.init(values, stream, fromUnixNano(req.GetDeadlineUnixNano()))
	return rec
}

// setDone fills in and returns the record's Done event.
func (r *record) setDone(kind pluginpb.ErrorKind, msg, stack string) *pluginpb.Event {
	r.d = pluginpb.Done{Kind: kind, Error: msg, Stack: stack}
	r.done.Done = &r.d
	r.ev.Event = &r.done
	return &r.ev
}

// run runs one admitted invocation and hands over its events and Done, then ends its
// context. stream ends with the stream. rec is the invocation's record, sk its sink (often
// rec.pipe).
func (s *Server) run(stream context.Context, rec *record, sk sink) {
	info, logger, prods := s.env()
	rec.inv = invocation{sink: sk, stream: stream, logger: logger}
	rec.env = env{info: info, logger: logger, producers: prods, inv: &rec.inv}
	out, done := s.call(rec)
	s.release()
	rec.inv.finish(out, done)
	rec.ctx.cancel(context.Canceled) // over: a goroutine the function left sees it end
	s.finished()
}

// call runs the handler and returns its returned output (nil for none) and Done, for run to
// send together.
func (s *Server) call(rec *record) (out *pluginpb.Output, done *pluginpb.Event) {
	inv, e, req, ctx := &rec.inv, &rec.env, rec.req, &rec.ctx
	if why := ctx.cause(); why != nil {
		// Its deadline passed on the way, or it was cancelled already: do not start it.
		return nil, rec.setDone(endKind(why), why.Error(), "")
	}
	rec.msg.fill(req, e.logger)
	ci := &rec.ci
	ci.Message = &rec.msg
	ci.Emit = func(ectx context.Context, o call.Output) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return inv.send(ectx, outputEvent(o))
	}
	if e.info.ManualAck {
		ci.Ack = func() error {
			return inv.send(inv.stream, &pluginpb.Event{Event: &pluginpb.Event_Ack{Ack: &pluginpb.Ack{}}})
		}
	}
	result, err := s.h(ctx, e, ci)
	if err != nil {
		var pe *call.PanicError
		if errors.As(err, &pe) {
			return nil, rec.setDone(pluginpb.ErrorKind_ERROR_KIND_PANIC, err.Error(), string(pe.Stack))
		}
		return nil, rec.setDone(endKind(ctx.cause()), err.Error(), "")
	}
	if result != nil {
		// The returned output goes out even if the deadline passed after the function
		// returned: the function did finish. It is sent with Done, on the stream's context.
		rec.out.Payload = result
		out = &rec.out
	}
	return out, rec.setDone(pluginpb.ErrorKind_ERROR_KIND_NONE, "", "")
}

// endKind is the kind of a failed invocation whose context ended with cause (nil: it runs).
func endKind(cause error) pluginpb.ErrorKind {
	switch {
	case cause == nil:
		return pluginpb.ErrorKind_ERROR_KIND_USER
	case errors.Is(cause, call.ErrDeadline):
		return pluginpb.ErrorKind_ERROR_KIND_DEADLINE
	default:
		return pluginpb.ErrorKind_ERROR_KIND_CANCELED
	}
}

func doneEvent(kind pluginpb.ErrorKind, msg, stack string) *pluginpb.Event {
	return &pluginpb.Event{Event: &pluginpb.Event_Done{Done: &pluginpb.Done{Kind: kind, Error: msg, Stack: stack}}}
}

func outputEvent(o call.Output) *pluginpb.Event {
	var et int64
	if !o.EventTime.IsZero() {
		et = o.EventTime.UnixNano()
	}
	return &pluginpb.Event{Event: &pluginpb.Event_Output{Output: &pluginpb.Output{
		Payload:           o.Payload,
		Key:               o.Key,
		Properties:        o.Properties,
		EventTimeUnixNano: et,
	}}}
}

// inputMessage is the input as the function sees it (FunctionContext.GetCurrentRecord). Its ID
// is decoded on first use: few functions ask for it, and decoding every input's (protobuf)
// profiled at a tenth of the plugin's CPU.
type inputMessage struct {
	call.Message
	rawID  []byte
	logger *slog.Logger
	once   sync.Once
}

// fill sets m from req. Called once, before the function runs.
func (m *inputMessage) fill(req *pluginpb.InvokeRequest, logger *slog.Logger) {
	m.Message = call.Message{
		TopicName:    req.GetTopic(),
		Producer:     req.GetProducerName(),
		Props:        req.GetProperties(),
		Data:         req.GetPayload(),
		Published:    fromUnixNano(req.GetPublishTimeUnixNano()),
		Event:        fromUnixNano(req.GetEventTimeUnixNano()),
		MsgKey:       req.GetKey(),
		OrderKey:     req.GetOrderingKey(),
		Redeliveries: req.GetRedeliveryCount(),
	}
	m.rawID, m.logger = req.GetMessageId(), logger
}

// ID implements pulsar.Message; it is pulsar.EarliestMessageID() when no id is known. It is
// safe for concurrent use.
func (m *inputMessage) ID() pulsar.MessageID {
	m.once.Do(func() {
		if len(m.rawID) == 0 {
			return
		}
		id, err := pulsar.DeserializeMessageID(m.rawID)
		if err != nil {
			// Only the record's ID() is unknown.
			m.logger.Warn("decoding the input message id", "err", err)
			return
		}
		m.MsgID = id
	})
	return m.Message.ID()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
