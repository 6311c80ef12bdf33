package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/fnhost/fnhost/functions/pf/invocation"
	"github.com/fnhost/fnhost/functions/pf/plugin"
	"github.com/fnhost/fnhost/internal/sleep"
)

// ErrDeadline is the error of an input whose caller's deadline passed before it started: it is
// not run (settlement rule 2).
var ErrDeadline = errors.New("invocation deadline passed")

// process runs one input through the function and settles it. It returns when the function
// has returned; the input is settled later, once its outputs are persisted (from the last
// send's callback), so the lane goes on meanwhile.
func (e *Engine) process(d delivery) {
	cfg := &e.cfg
	msg := d.msg
	start := cfg.Now()
	if cfg.Guarantee == AtMostOnce {
		e.ack(d)
	}
	corr, perr := invocation.ParseRequest(msg.Properties(), msg.RedeliveryCount())
	if perr != nil {
		cfg.Logger.Warn("ignoring a malformed invocation property", "message_id", msg.ID().String(), "err", perr)
	}
	e.settling.Add(1)

	// Rule 2: the caller's deadline passed before the input started: not run.
	if !corr.Deadline.IsZero() && !start.Before(corr.Deadline) {
		in := cfg.Metrics.Instance(0)
		in.Received()
		in.UserException(ErrDeadline.Error())
		cfg.Logger.Debug("caller's deadline passed before the input started; not run", "message_id", msg.ID().String())
		o := e.newOutputs(d, corr, nil)
		o.finish(ErrDeadline.Error(), true, func(sendErr error) {
			defer e.settling.Done()
			if sendErr != nil {
				cfg.Logger.Warn("replying to the caller", "message_id", msg.ID().String(), "err", sendErr)
			}
			if cfg.Guarantee != AtMostOnce {
				e.ack(d)
			}
		})
		return
	}

	deadline := corr.Deadline
	if cfg.Timeout > 0 {
		if t := start.Add(cfg.Timeout); deadline.IsZero() || t.Before(deadline) {
			deadline = t
		}
	}
	ctx := e.work
	var span Span
	if cfg.Tracer != nil {
		ctx, span = cfg.Tracer.Start(ctx, msg)
	}
	c := &Call{Message: msg, Properties: msg.Properties(), Deadline: deadline}
	if span != nil {
		c.Properties = span.ForFunction(c.Properties)
	}
	var cancel context.CancelFunc = func() {}
	if !deadline.IsZero() {
		ctx, cancel = context.WithDeadline(ctx, deadline)
	}
	defer cancel()

	var (
		o    *outputs
		res  plugin.Result
		inst int
		err  error
	)
	for rerun := 0; ; rerun++ {
		// An EFFECTIVELY_ONCE rerun is another attempt: its replies must not splice into
		// those of the run that died.
		corr.Attempt = int(msg.RedeliveryCount()) + rerun
		c.Attempt = corr.Attempt
		o = e.newOutputs(d, corr, span)
		res, inst, err = e.fn.Invoke(ctx, c, o.emit)
		// Rule 6, EFFECTIVELY_ONCE: an input not run runs again here, before the next input:
		// redelivered after newer inputs, its outputs would carry lower sequence ids than
		// outputs already persisted, and the broker would drop them as duplicates.
		if err == nil || cfg.Guarantee != EffectivelyOnce || e.work.Err() != nil {
			break
		}
		cfg.Logger.Warn("invocation not run; running it again before the next input (EFFECTIVELY_ONCE)",
			"message_id", msg.ID().String(), "attempt", rerun+1, "err", err)
		sleep.For(e.work, min(cfg.RetryBackoff<<min(rerun, 6), 30*time.Second)) // the loop checks work
	}
	metrics := cfg.Metrics.Instance(inst)
	metrics.Received()

	failed := ""
	switch {
	case err != nil:
		failed = err.Error()
	case res.Kind != plugin.KindNone:
		failed = res.Error
		if failed == "" {
			failed = res.Kind.String()
		}
	}
	userFailed := err == nil && res.Kind != plugin.KindNone
	callerGone := !corr.Deadline.IsZero() && !cfg.Now().Before(corr.Deadline)
	lastTry := cfg.MaxRetries >= 0 && int(msg.RedeliveryCount()) >= cfg.MaxRetries
	retries := userFailed && !callerGone && !lastTry && cfg.Guarantee != EffectivelyOnce && cfg.Guarantee != AtMostOnce
	// A failure is reported to the caller only when no retry follows, or when retries are
	// unlimited; an input not run (err) is redelivered and reports nothing.
	report := err == nil && (!retries || cfg.MaxRetries < 0)
	o.finish(failed, report, func(sendErr error) {
		defer e.settling.Done()
		e.settle(d, o, metrics, start, err, res, sendErr, callerGone, lastTry)
		if span != nil {
			span.End(err, res, sendErr)
		}
	})
}

// settle counts and settles one input once its outputs are persisted (or failed), by the
// rules of the package doc.
func (e *Engine) settle(d delivery, o *outputs, m *Instance, start time.Time, err error, res plugin.Result, sendErr error, callerGone, lastTry bool) {
	cfg := &e.cfg
	id := d.msg.ID().String()
	switch {
	case err != nil: // rule 6
		m.SystemException(err.Error())
		cfg.Logger.Warn("invocation not run; redelivering", "message_id", id, "err", err)
		e.nack(d, o)
	case res.Kind != plugin.KindNone: // rules 3 and 5
		m.UserException(resultText(res))
		attrs := []any{"message_id", id, "kind", res.Kind.String(), "err", res.Error, "redeliveries", d.msg.RedeliveryCount()}
		if res.Stack != "" {
			attrs = append(attrs, "stack", res.Stack)
		}
		cfg.Logger.Warn("function failed", attrs...)
		switch {
		case callerGone, cfg.Guarantee == EffectivelyOnce:
			if cfg.Guarantee != AtMostOnce && !o.userAcked() {
				e.ack(d)
			}
		default:
			if lastTry {
				cfg.Metrics.retriesExceeded.Inc()
			}
			e.nack(d, o)
		}
		if sendErr != nil {
			cfg.Logger.Warn("replying to the caller", "message_id", id, "err", sendErr)
		}
	case sendErr != nil: // rule 7
		m.SystemException(sendErr.Error())
		cfg.Logger.Warn("publishing outputs; redelivering the input", "message_id", id, "err", sendErr)
		e.nack(d, o)
	default: // rule 4
		m.Processed(cfg.Now().Sub(start))
		if cfg.Guarantee == AtLeastOnce || cfg.Guarantee == EffectivelyOnce {
			e.ack(d)
		}
	}
}

func resultText(res plugin.Result) string {
	if res.Error == "" {
		return res.Kind.String()
	}
	return res.Error
}

func (e *Engine) ack(d delivery) {
	if err := d.src.Ack(d.msg); err != nil {
		e.cfg.Metrics.Instance(0).SystemException(err.Error())
		e.cfg.Logger.Warn("acknowledging an input", "message_id", d.msg.ID().String(), "topic", d.msg.Topic(), "err", err)
	}
}

// nack asks for redelivery, unless the input was acknowledged on receipt (ATMOST_ONCE) or by
// the function (MANUAL).
func (e *Engine) nack(d delivery, o *outputs) {
	if e.cfg.Guarantee == AtMostOnce || o.userAcked() {
		return
	}
	d.src.Nack(d.msg)
}

// outputs publishes the outputs of one attempt: to the output topic, and to the reply-to
// topic when the input names one.
type outputs struct {
	e    *Engine
	d    delivery
	corr invocation.Request
	// base are the properties every output carries: the forwarded input properties (less
	// the per-invocation ones), the trace context and the correlation properties of Pulsar
	// Functions. Read-only once built: outputs without properties of their own share it.
	base map[string]string
	n    int // outputs sent to the output topic: the EFFECTIVELY_ONCE sequence

	mu      sync.Mutex // guards the rest
	replies *invocation.Replies
	final   bool        // the final output was sent
	pending int         // sends in flight, plus one until finish
	done    func(error) // called once, when pending reaches 0 after finish
	errs    []error
	acked   bool // MANUAL: the function acknowledged the input
}

func (e *Engine) newOutputs(d delivery, corr invocation.Request, span Span) *outputs {
	in := d.msg.Properties()
	base := make(map[string]string, len(in)+4)
	if e.cfg.ForwardProperties {
		maps.Copy(base, in)
		invocation.DropPerInvocation(base)
		delete(base, invocation.ID)
	}
	if span != nil {
		span.Propagate(base)
	} else {
		invocation.CopyTraceContext(base, in)
	}
	base[invocation.InputTopic] = d.msg.Topic()
	base[invocation.InputMessageID] = invocation.MessageID(d.msg)
	return &outputs{e: e, d: d, corr: corr, base: base, replies: invocation.NewReplies(corr), pending: 1}
}

// emit is the Function's event callback.
func (o *outputs) emit(ev plugin.Event) error {
	switch ev.Kind {
	case plugin.EventOutput:
		o.send(ev.Output, ev.Last)
	case plugin.EventMetric:
		o.e.cfg.Metrics.Instance(0).RecordMetric(ev.Metric.Name, ev.Metric.Value)
	case plugin.EventAck:
		if o.e.cfg.Guarantee != Manual {
			return nil
		}
		o.mu.Lock()
		acked := o.acked
		o.acked = true
		o.mu.Unlock()
		if !acked {
			if err := o.d.src.Ack(o.d.msg); err != nil {
				return fmt.Errorf("acknowledging input %s: %w", o.d.msg.ID(), err)
			}
		}
	}
	return nil
}

func (o *outputs) userAcked() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.acked
}

// send publishes out to the output topic and to reply-to: one message, numbered once. final
// marks it as the invocation's last output.
func (o *outputs) send(out plugin.Output, final bool) {
	cfg := &o.e.cfg
	correlated := o.corr.Correlated()
	m := o.message(out, correlated)
	if correlated {
		o.mu.Lock()
		o.replies.Output(m.Properties, final, "")
		o.final = o.final || final
		o.mu.Unlock()
	}
	// A reply-to naming the output topic gets the output once, below: it carries the reply
	// properties already.
	if o.corr.ReplyTo != "" && o.corr.ReplyTo != cfg.OutputTopic {
		o.publish(o.corr.ReplyTo, true, m)
	}
	if cfg.OutputTopic == "" {
		if o.corr.ReplyTo == "" {
			cfg.Metrics.outputsDropped.Inc()
		}
		return
	}
	if cfg.Guarantee == EffectivelyOnce {
		seq, err := sequenceID(o.d.msg.ID(), o.n)
		if err != nil {
			o.fail(err)
			return
		}
		c := *m // the reply-to copy carries no sequence id
		c.SequenceID = &seq
		m = &c
	}
	o.n++
	o.publish(cfg.OutputTopic, false, m)
}

// message builds the message of out (see the package doc for the precedence of properties).
// Its properties are not modified once it is published: one message goes to both topics.
func (o *outputs) message(out plugin.Output, correlated bool) *pulsar.ProducerMessage {
	props := o.base
	if correlated || len(out.Properties) > 0 {
		// Sized for the base, the output's own and the six reply properties at most.
		props = make(map[string]string, len(o.base)+len(out.Properties)+6)
		maps.Copy(props, o.base)
		if len(out.Properties) > 0 {
			maps.Copy(props, out.Properties)
			// The correlation properties are the engine's: the function's own never stand.
			invocation.DropPerInvocation(props)
			delete(props, invocation.ID)
			props[invocation.InputTopic] = o.base[invocation.InputTopic]
			props[invocation.InputMessageID] = o.base[invocation.InputMessageID]
		}
	}
	in := o.d.msg
	m := &pulsar.ProducerMessage{Payload: out.Payload, Key: out.Key, Properties: props, EventTime: out.EventTime}
	if m.Key == "" {
		m.Key = in.Key()
		m.OrderingKey = in.OrderingKey()
	}
	if m.EventTime.IsZero() {
		m.EventTime = in.EventTime()
	}
	return m
}

// finish ends the attempt: when report is true and no final output was sent, it sends reply-to
// the lone end message (with failed as its error when not empty). It calls done with the
// sends' errors once every send has completed, from the last send's callback (or at once when
// nothing is in flight).
func (o *outputs) finish(failed string, report bool, done func(error)) {
	o.mu.Lock()
	o.done = done
	final := o.final
	o.mu.Unlock()
	if report && o.corr.ReplyTo != "" && (!final || failed != "") {
		m := o.message(plugin.Output{Payload: []byte{}}, true)
		o.mu.Lock()
		o.replies.End(m.Properties, failed)
		o.mu.Unlock()
		o.publish(o.corr.ReplyTo, true, m)
	}
	o.release(nil)
}

func (o *outputs) publish(topic string, reply bool, m *pulsar.ProducerMessage) {
	o.mu.Lock()
	o.pending++
	o.mu.Unlock()
	o.e.sink.Send(o.e.work, topic, reply, m, o.release)
}

// release ends one pending send (or finish's own token) with err.
func (o *outputs) release(err error) {
	o.mu.Lock()
	if err != nil {
		o.errs = append(o.errs, err)
	}
	o.pending--
	last := o.pending == 0 && o.done != nil
	done, errs := o.done, o.errs
	o.mu.Unlock()
	if last {
		done(errors.Join(errs...))
	}
}

func (o *outputs) fail(err error) {
	o.mu.Lock()
	o.errs = append(o.errs, err)
	o.mu.Unlock()
}
