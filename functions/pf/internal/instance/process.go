package instance

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
	pb "github.com/fnhost/fnhost/functions/pf/internal/pfproto"
	"github.com/fnhost/fnhost/functions/pf/invocation"
)

// acker is the part of a consumer the processor needs: the consumer that delivered a message
// settles it (for a regex subscription that is the pattern consumer, which knows every matched
// topic).
type acker interface {
	Ack(pulsar.Message) error
	Nack(pulsar.Message)
}

// delivery is one input and the consumer that delivered it.
type delivery struct {
	from acker
	msg  pulsar.Message
}

// publisher sends one output message to a topic and calls done once with the outcome; reply
// says that topic is a reply-to topic.
type publisher interface {
	publish(topic string, reply bool, m *pulsar.ProducerMessage, done func(error))
}

// processor runs the function for each input and settles the input (ack or nack) once the
// function has returned and every output it produced is persisted.
type processor struct {
	cfg     *Config
	handler call.Handler
	env     call.Env
	stats   *stats
	logger  *slog.Logger
	out     publisher
	now     func() time.Time

	// callCtx is the parent of every call's context; it is cancelled only when the drain
	// after a stop runs out of time, so in-flight calls may finish.
	callCtx context.Context
	// inflight counts inputs not yet settled.
	inflight sync.WaitGroup
}

// dispatch feeds inputs from in to cfg.Concurrency workers until ctx is done or in is
// closed, then waits for the workers to finish the call they are in. Inputs with the same key
// go to the same worker, so per-key order holds; keyless inputs are spread round-robin (one
// worker: strict order). Inputs queued but not started when ctx ends are left unacked, and
// the broker redelivers them.
func (p *processor) dispatch(ctx context.Context, in <-chan delivery) {
	n := max(p.cfg.Concurrency, 1)
	queues := make([]chan delivery, n)
	var workers sync.WaitGroup
	for i := range queues {
		// One input may wait per worker, so the next one is ready when a call returns.
		queues[i] = make(chan delivery, 1)
		q := queues[i]
		workers.Go(func() {
			for d := range q {
				if ctx.Err() != nil {
					continue // stopping: leave it unacked for redelivery
				}
				p.process(d)
			}
		})
	}
	defer func() {
		for _, q := range queues {
			close(q)
		}
		workers.Wait()
	}()
	next := 0
	for {
		var d delivery
		select {
		case <-ctx.Done():
			return
		case d0, ok := <-in:
			if !ok {
				return
			}
			d = d0
		}
		i := 0
		if n > 1 {
			if key := orderKey(d.msg); key != "" {
				h := fnv.New32a()
				h.Write([]byte(key)) // hash.Hash never fails
				i = int(h.Sum32() % uint32(n))
			} else {
				i, next = next, (next+1)%n
			}
		}
		select {
		case queues[i] <- d:
		case <-ctx.Done():
			return
		}
	}
}

// orderKey is the key order is kept by, as Key_Shared subscriptions route.
func orderKey(m pulsar.Message) string {
	if k := m.OrderingKey(); k != "" {
		return k
	}
	return m.Key()
}

// attempt is the state of one input's processing.
type attempt struct {
	p   *processor
	d   delivery
	req invocation.Request

	mu         sync.Mutex
	replies    *invocation.Replies // numbers the outputs
	returned   bool                // the function returned: no more outputs
	pending    int                 // outputs not yet persisted
	sendErr    error               // first publish failure
	settled    bool
	userErr    error         // the function failed (or was skipped past its deadline)
	ackFailure bool          // settle a failure with ack: retrying cannot help
	latency    time.Duration // of a successful call
	userAcked  bool          // MANUAL: the function acked
}

// process runs the function for one input. It returns when the function has returned; the
// input is settled later, when its outputs are persisted.
func (p *processor) process(d delivery) {
	p.stats.received()
	p.inflight.Add(1)
	a := &attempt{p: p, d: d}
	if p.cfg.Guarantee == pb.ProcessingGuarantees_ATMOST_ONCE {
		p.ack(d)
	}
	req, err := invocation.ParseRequest(d.msg.Properties(), d.msg.RedeliveryCount())
	if err != nil {
		p.logger.Warn("ignoring a malformed invocation property", "message_id", d.msg.ID().String(), "err", err)
	}
	a.req, a.replies = req, invocation.NewReplies(req)

	if !req.Deadline.IsZero() && !p.now().Before(req.Deadline) {
		a.fail(call.ErrDeadline, true)
		return
	}
	ctx, cancel := p.callContext(req)
	defer cancel()
	inv := &call.Invocation{Message: d.msg, Emit: a.emit}
	if p.cfg.Guarantee == pb.ProcessingGuarantees_MANUAL {
		inv.Ack = a.manualAck
	}
	start := p.now()
	out, err := p.handler(ctx, p.env, inv)
	if err != nil {
		a.fail(err, false)
		return
	}
	a.mu.Lock()
	a.latency = p.now().Sub(start)
	a.mu.Unlock()
	if out != nil {
		a.output(call.Output{Payload: out}, true, "")
	} else {
		a.finalReply("")
	}
	a.finish()
}

// callContext bounds one call by timeoutMs and by the invocation's deadline.
func (p *processor) callContext(req invocation.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(p.callCtx)
	if p.cfg.Timeout > 0 {
		c, cc := context.WithTimeout(ctx, p.cfg.Timeout)
		ctx, cancel = c, chain(cancel, cc)
	}
	if !req.Deadline.IsZero() {
		c, cc := context.WithDeadline(ctx, req.Deadline)
		ctx, cancel = c, chain(cancel, cc)
	}
	return ctx, cancel
}

func chain(a, b context.CancelFunc) context.CancelFunc { return func() { b(); a() } }

// fail handles a failed call: a user exception. The caller is told (on the last attempt, when
// retries are configured) and the input is nacked for redelivery, or acked when skip says
// retrying cannot help (its deadline passed).
func (a *attempt) fail(err error, skip bool) {
	p := a.p
	p.stats.userException(err)
	attrs := []any{"message_id", a.d.msg.ID().String(), "topic", a.d.msg.Topic(), "err", err}
	var pe *call.PanicError
	if errors.As(err, &pe) {
		attrs = append(attrs, "stack", string(pe.Stack))
	}
	p.logger.Warn("function failed", attrs...)
	a.mu.Lock()
	a.userErr, a.ackFailure = err, skip
	a.mu.Unlock()
	if skip || p.cfg.MaxRetries == 0 || a.d.msg.RedeliveryCount() >= uint32(p.cfg.MaxRetries) {
		a.finalReply(err.Error())
	}
	a.finish()
}

// emit is call.Invocation.Emit: one more output, before the function returns.
func (a *attempt) emit(ctx context.Context, out call.Output) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a.mu.Lock()
	returned := a.returned
	a.mu.Unlock()
	if returned {
		return errors.New("emit after the function returned")
	}
	return a.output(out, false, "")
}

// output sends one output to the output topic and to the reply-to topic.
func (a *attempt) output(out call.Output, final bool, errText string) error {
	p := a.p
	m := outputMessage(a.d.msg, out, p.cfg.ForwardProperties)
	if a.req.Correlated() {
		a.mu.Lock()
		a.replies.Output(m.Properties, final, errText)
		a.mu.Unlock()
	}
	var errs []error
	if topic := p.cfg.Info.OutputTopic; topic != "" {
		errs = append(errs, a.send(topic, false, m))
	}
	// A reply-to naming the output topic gets the output once: it carries the reply
	// properties already.
	if a.req.ReplyTo != "" && a.req.ReplyTo != p.cfg.Info.OutputTopic {
		errs = append(errs, a.send(a.req.ReplyTo, true, m))
	}
	return errors.Join(errs...)
}

// finalReply tells the reply-to topic that the invocation is over when no output said so:
// an empty final message, carrying errText when the call failed.
func (a *attempt) finalReply(errText string) {
	if a.req.ReplyTo == "" {
		return
	}
	m := outputMessage(a.d.msg, call.Output{Payload: []byte{}}, false)
	a.mu.Lock()
	a.replies.End(m.Properties, errText)
	a.mu.Unlock()
	_ = a.send(a.req.ReplyTo, true, m) // a failure is recorded in sendErr and settles the input
}

func (a *attempt) send(topic string, reply bool, m *pulsar.ProducerMessage) error {
	a.mu.Lock()
	a.pending++
	a.mu.Unlock()
	var once sync.Once
	var result error
	done := make(chan struct{})
	a.p.out.publish(topic, reply, m, func(err error) {
		once.Do(func() {
			result = err
			close(done)
			a.sent(err)
		})
	})
	select {
	case <-done:
		return result // failed (or succeeded) at once, e.g. no producer
	default:
		return nil
	}
}

func (a *attempt) sent(err error) {
	a.mu.Lock()
	a.pending--
	if err != nil && a.sendErr == nil {
		a.sendErr = err
	}
	a.mu.Unlock()
	a.maybeSettle()
}

func (a *attempt) finish() {
	a.mu.Lock()
	a.returned = true
	a.mu.Unlock()
	a.maybeSettle()
}

func (a *attempt) manualAck() error {
	a.mu.Lock()
	a.userAcked = true
	a.mu.Unlock()
	if err := a.d.from.Ack(a.d.msg); err != nil {
		return fmt.Errorf("acking message %s: %w", a.d.msg.ID(), err)
	}
	return nil
}

// maybeSettle acks or nacks the input once the function returned and every output is
// persisted; it runs once.
func (a *attempt) maybeSettle() {
	a.mu.Lock()
	if a.settled || !a.returned || a.pending > 0 {
		a.mu.Unlock()
		return
	}
	a.settled = true
	userErr, sendErr, skip, latency, userAcked := a.userErr, a.sendErr, a.ackFailure, a.latency, a.userAcked
	a.mu.Unlock()

	p := a.p
	defer p.inflight.Done()
	switch {
	case userErr != nil && skip:
		if sendErr != nil {
			p.logger.Warn("replying to the caller", "message_id", a.d.msg.ID().String(), "err", sendErr)
		}
		if p.cfg.Guarantee != pb.ProcessingGuarantees_ATMOST_ONCE {
			p.ack(a.d)
		}
	case userErr != nil:
		if sendErr != nil {
			p.logger.Warn("replying to the caller", "message_id", a.d.msg.ID().String(), "err", sendErr)
		}
		p.nack(a.d, userAcked)
	case sendErr != nil:
		p.stats.systemException(sendErr)
		p.logger.Error("publishing the function's output; the input will be redelivered",
			"message_id", a.d.msg.ID().String(), "err", sendErr)
		p.nack(a.d, userAcked)
	default:
		p.stats.processed(latency)
		if p.cfg.Guarantee == pb.ProcessingGuarantees_ATLEAST_ONCE {
			p.ack(a.d)
		}
	}
}

func (p *processor) ack(d delivery) {
	if err := d.from.Ack(d.msg); err != nil {
		p.stats.systemException(err)
		p.logger.Warn("acking an input", "message_id", d.msg.ID().String(), "topic", d.msg.Topic(), "err", err)
	}
}

// nack asks for redelivery, unless the guarantee is at-most-once (acked on receipt) or the
// function already acked it (MANUAL).
func (p *processor) nack(d delivery, userAcked bool) {
	switch p.cfg.Guarantee {
	case pb.ProcessingGuarantees_ATLEAST_ONCE:
	case pb.ProcessingGuarantees_MANUAL:
		if userAcked {
			return
		}
	default:
		return
	}
	d.from.Nack(d.msg)
}
