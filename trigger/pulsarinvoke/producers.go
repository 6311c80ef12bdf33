package pulsarinvoke

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/fnhost/fnhost/trigger"
)

// producers caches one producer per topic and tracks whether Pulsar takes messages at all.
// Safe for concurrent use.
type producers struct {
	client  pulsar.Client
	options func(topic string) pulsar.ProducerOptions
	health  *health

	mu      sync.Mutex
	m       map[string]*producerEntry
	closed  bool
	pending sync.WaitGroup // producer creations and sends (send) under way
	// sendBound bounds a send's wait for its receipt (past SendTimeout, which starts only
	// once the producer took the message).
	sendBound time.Duration
}

type producerEntry struct {
	ready chan struct{} // closed when p or err is set
	p     pulsar.Producer
	err   error
}

var errRetryShortly = fmt.Errorf("%w: Pulsar did not take the last message; retrying shortly", trigger.ErrUnavailable)

var errProducersClosed = fmt.Errorf("%w: the Pulsar invoker is closed", trigger.ErrUnavailable)

// get returns the producer of topic, creating it on first use. Creation runs in its own
// goroutine (CreateProducer takes no ctx) so that a caller whose ctx ends stops waiting; a
// failed creation is forgotten and the next get tries again.
func (ps *producers) get(ctx context.Context, topic string) (pulsar.Producer, error) {
	ps.mu.Lock()
	if ps.closed {
		ps.mu.Unlock()
		return nil, errProducersClosed
	}
	e, ok := ps.m[topic]
	if !ok {
		e = &producerEntry{ready: make(chan struct{})}
		ps.m[topic] = e
		ps.pending.Go(func() { ps.create(topic, e) })
	}
	ps.mu.Unlock()
	select {
	case <-e.ready:
		return e.p, e.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (ps *producers) create(topic string, e *producerEntry) {
	p, err := ps.client.CreateProducer(ps.options(topic))
	ps.mu.Lock()
	defer ps.mu.Unlock()
	switch {
	case err != nil:
		delete(ps.m, topic)
		e.err = fmt.Errorf("%w: creating a producer for %s: %w", trigger.ErrUnavailable, topic, err)
		ps.health.failed()
	case ps.closed:
		p.Close()
		delete(ps.m, topic)
		e.err = errProducersClosed
	default:
		e.p = p
	}
	close(e.ready)
}

// send publishes m to topic and waits for the broker's receipt (or ctx). A failure to publish
// is trigger.ErrUnavailable, except for messages that can never be sent (too large).
//
// The message goes out at once rather than at the producer's next batching tick, in its own
// batch (with any topics-route messages already queued): a caller waits on it. The send
// outlives ctx, bounded by sendBound, so that its outcome still tells Pulsar's health.
func (ps *producers) send(ctx context.Context, topic string, m *pulsar.ProducerMessage) (pulsar.MessageID, error) {
	p, err := ps.ready(ctx, topic)
	if err != nil {
		return nil, err
	}
	type receipt struct {
		id  pulsar.MessageID
		err error
	}
	done := make(chan receipt, 1) // buffered: the sender never blocks, even after ctx ended
	ps.mu.Lock()
	switch {
	case ps.closed:
		ps.mu.Unlock()
		return nil, errProducersClosed
	case ctx.Err() != nil:
		ps.mu.Unlock()
		return nil, ctx.Err() // the caller is gone: publish nothing for it
	}
	ps.pending.Go(func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ps.sendBound)
		defer cancel()
		id, err := p.Send(sctx, m)
		done <- receipt{id, ps.sendError(topic, err)}
	})
	ps.mu.Unlock()
	select {
	case r := <-done:
		return r.id, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// sendAsync hands m to topic's producer; cb gets the receipt (its error already mapped). The
// returned error is for what failed before the message was handed over.
func (ps *producers) sendAsync(ctx context.Context, topic string, m *pulsar.ProducerMessage, cb func(pulsar.MessageID, error)) error {
	p, err := ps.ready(ctx, topic)
	if err != nil {
		return err
	}
	// The send outlives ctx once handed over (SendTimeout bounds it): a caller that goes away
	// does not unsend its message.
	p.SendAsync(context.WithoutCancel(ctx), m, func(id pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
		cb(id, ps.sendError(topic, err))
	})
	return nil
}

// ready returns topic's producer, unless the health breaker refuses sends for now.
func (ps *producers) ready(ctx context.Context, topic string) (pulsar.Producer, error) {
	if !ps.health.allow() {
		return nil, errRetryShortly
	}
	return ps.get(ctx, topic)
}

// sendError maps a send result and records Pulsar's health. A producer closed under a send
// is the invoker shutting down, not an outage.
func (ps *producers) sendError(topic string, err error) error {
	switch {
	case err == nil:
		ps.health.ok()
		return nil
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, pulsar.ErrProducerClosed):
		return errProducersClosed
	case errors.Is(err, pulsar.ErrMessageTooLarge), errors.Is(err, pulsar.ErrMetaTooLarge),
		errors.Is(err, pulsar.ErrInvalidMessage), errors.Is(err, pulsar.ErrSchema):
		return fmt.Errorf("publishing to %s: %w", topic, err)
	default:
		ps.health.failed()
		return fmt.Errorf("%w: publishing to %s: %w", trigger.ErrUnavailable, topic, err)
	}
}

// close waits for the sends under way, then flushes and closes every producer, bounded by
// ctx. Idempotent.
func (ps *producers) close(ctx context.Context) error {
	ps.mu.Lock()
	if ps.closed {
		ps.mu.Unlock()
		return nil
	}
	ps.closed = true
	var list []pulsar.Producer
	for _, e := range ps.m {
		select {
		case <-e.ready:
			if e.p != nil {
				list = append(list, e.p)
			}
		default: // still being created: create closes it
		}
	}
	ps.mu.Unlock()
	var errs []error
	// Sends under way end first (each within sendBound), then the producers close: a send
	// that reaches a closing producer may never be answered.
	waited := make(chan struct{})
	go func() { ps.pending.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("producer creations or sends still under way: %w", ctx.Err()))
	}
	for _, p := range list {
		if err := p.FlushWithCtx(ctx); err != nil {
			errs = append(errs, fmt.Errorf("flushing the producer of %s: %w", p.Topic(), err))
		}
		p.Close()
	}
	return errors.Join(errs...)
}

// health is a circuit breaker over publishing: after a failure it refuses sends at once
// (callers answer 503 without waiting for a send timeout), letting one probe through every
// interval; the first success closes it again. Safe for concurrent use.
type health struct {
	interval time.Duration
	now      func() time.Time

	mu      sync.Mutex
	down    bool
	lastTry time.Time
}

func (h *health) allow() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.down {
		return true
	}
	if now := h.now(); now.Sub(h.lastTry) >= h.interval {
		h.lastTry = now
		return true
	}
	return false
}

func (h *health) failed() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.down, h.lastTry = true, h.now()
}

func (h *health) ok() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.down = false
}

func (h *health) isDown() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.down
}
