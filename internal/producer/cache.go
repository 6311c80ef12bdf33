// Package producer caches Pulsar producers, one per topic, and publishes through them with
// retries of transient failures. It is the one producer cache of fnhost: the engine's outputs
// and replies, the SDK's NewOutputMessage and the trigger's input producers use it.
package producer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// ErrClosed is returned by Get and passed to Send's callback once the cache is closed.
var ErrClosed = errors.New("producer: cache closed")

// Creator creates producers: pulsar.Client satisfies it.
type Creator interface {
	CreateProducer(pulsar.ProducerOptions) (pulsar.Producer, error)
}

// Cache holds one producer per topic, created on first use with Options(topic). Its methods
// are safe for concurrent use.
type Cache struct {
	client  Creator
	options func(topic string) pulsar.ProducerOptions
	// Retry is how sends are retried; the zero value retries nothing.
	retry Retry

	mu     sync.Mutex
	m      map[string]*entry
	closed bool
	bg     sync.WaitGroup // creations and retry timers under way
	stop   chan struct{}  // closed by Close: retry timers give up
}

type entry struct {
	ready chan struct{} // closed once p or err is set
	p     pulsar.Producer
	err   error
}

// Retry says how Send retries a send that failed transiently (a timeout, a full queue, a lost
// connection): Attempts sends in all, waiting First before the second and doubling up to Max.
type Retry struct {
	Attempts   int
	First, Max time.Duration
}

// DefaultRetry is the retry of outputs: five attempts over about three seconds.
var DefaultRetry = Retry{Attempts: 5, First: 200 * time.Millisecond, Max: 5 * time.Second}

// New returns a cache creating producers on client with options(topic), retrying sends as
// retry says.
func New(client Creator, options func(topic string) pulsar.ProducerOptions, retry Retry) *Cache {
	return &Cache{client: client, options: options, retry: retry, m: map[string]*entry{}, stop: make(chan struct{})}
}

// Get returns the producer of topic, creating it on first use. Creation runs apart (it takes
// no context), so a caller whose ctx ends stops waiting for it; a failed creation is forgotten,
// and the next Get tries again.
func (c *Cache) Get(ctx context.Context, topic string) (pulsar.Producer, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	e, ok := c.m[topic]
	if !ok {
		e = &entry{ready: make(chan struct{})}
		c.m[topic] = e
		c.bg.Go(func() { c.create(topic, e) })
	}
	c.mu.Unlock()
	select {
	case <-e.ready:
		return e.p, e.err
	default:
	}
	select {
	case <-e.ready:
		return e.p, e.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *Cache) create(topic string, e *entry) {
	p, err := c.client.CreateProducer(c.options(topic))
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err != nil:
		delete(c.m, topic)
		e.err = fmt.Errorf("creating a producer for %s: %w", topic, err)
	case c.closed:
		p.Close()
		delete(c.m, topic)
		e.err = ErrClosed
	default:
		e.p = p
	}
	close(e.ready)
}

// Send publishes m to topic and calls done exactly once with the outcome: nil once the broker
// has persisted it. A transient failure is sent again as the cache's Retry says. done may be
// called before Send returns (no producer), else from the client's callback goroutine. ctx
// bounds the wait for the producer, the send and the retry waits.
func (c *Cache) Send(ctx context.Context, topic string, m *pulsar.ProducerMessage, done func(error)) {
	p, err := c.Get(ctx, topic)
	if err != nil {
		done(err)
		return
	}
	c.attempt(ctx, p, m, 1, done)
}

func (c *Cache) attempt(ctx context.Context, p pulsar.Producer, m *pulsar.ProducerMessage, n int, done func(error)) {
	p.SendAsync(ctx, m, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
		if err == nil || n >= c.retry.Attempts || !Transient(err) || ctx.Err() != nil {
			if err != nil {
				err = fmt.Errorf("publishing to %s (attempt %d): %w", p.Topic(), n, err)
			}
			done(err)
			return
		}
		delay := min(c.retry.First<<(n-1), c.retry.Max)
		c.mu.Lock()
		closed := c.closed
		if !closed {
			c.bg.Add(1)
		}
		c.mu.Unlock()
		if closed {
			done(fmt.Errorf("publishing to %s: %w (after: %w)", p.Topic(), ErrClosed, err))
			return
		}
		go func() {
			defer c.bg.Done()
			t := time.NewTimer(delay)
			defer t.Stop()
			select {
			case <-t.C:
				c.attempt(ctx, p, m, n+1, done)
			case <-ctx.Done():
				done(fmt.Errorf("publishing to %s: stopped while retrying: %w", p.Topic(), err))
			case <-c.stop:
				done(fmt.Errorf("publishing to %s: %w while retrying: %w", p.Topic(), ErrClosed, err))
			}
		}()
	})
}

// permanent are send errors that a retry cannot fix.
var permanent = []error{
	pulsar.ErrMessageTooLarge, pulsar.ErrMetaTooLarge, pulsar.ErrProducerClosed, pulsar.ErrSchema,
	pulsar.ErrInvalidMessage, pulsar.ErrTopicNotfound, pulsar.ErrTopicTerminated, pulsar.ErrProducerFenced,
	pulsar.ErrTransaction, context.Canceled, ErrClosed,
}

// Transient reports whether a send that failed with err may succeed when sent again.
func Transient(err error) bool {
	for _, p := range permanent {
		if errors.Is(err, p) {
			return false
		}
	}
	return true
}

// Flush sends what every producer has batched and waits for the broker's receipts, bounded
// by ctx.
func (c *Cache) Flush(ctx context.Context) error {
	var errs []error
	for _, p := range c.producers() {
		if err := p.FlushWithCtx(ctx); err != nil {
			errs = append(errs, fmt.Errorf("flushing the producer of %s: %w", p.Topic(), err))
		}
	}
	return errors.Join(errs...)
}

// Topics returns the topics with a producer now.
func (c *Cache) Topics() []string {
	ps := c.producers()
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Topic())
	}
	return out
}

func (c *Cache) producers() []pulsar.Producer {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]pulsar.Producer, 0, len(c.m))
	for _, e := range c.m {
		select {
		case <-e.ready:
			if e.p != nil {
				out = append(out, e.p)
			}
		default:
		}
	}
	return out
}

// Close closes every producer (their pending sends fail) and makes later Gets fail with
// ErrClosed; sends waiting to be retried give up. It waits for creations under way, bounded
// by ctx. Idempotent and safe to call concurrently.
func (c *Cache) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.stop)
	var ps []pulsar.Producer
	for topic, e := range c.m {
		select {
		case <-e.ready:
			if e.p != nil {
				ps = append(ps, e.p)
			}
			delete(c.m, topic)
		default: // create closes it when it finishes
		}
	}
	c.mu.Unlock()
	for _, p := range ps {
		p.Close()
	}
	waited := make(chan struct{})
	go func() { // ends when the creations and timers do; Close waits below, bounded by ctx
		c.bg.Wait()
		close(waited)
	}()
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("producer: closing: creations or retries still under way: %w", ctx.Err())
	}
}
