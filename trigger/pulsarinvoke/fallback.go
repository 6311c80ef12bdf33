package pulsarinvoke

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/fnhost/fnhost/functions/pf/invocation"
	"github.com/fnhost/fnhost/internal/sleep"
)

// watchers reads the output topics of functions that may not reply to reply-to, one reader per
// topic, started on first use. A reader that no call has waited on for idle is closed by the
// janitor and opened again when a call needs it. close stops them all. Safe for concurrent use.
type watchers struct {
	client pulsar.Client
	table  *table
	log    *slog.Logger
	ctx    context.Context // ends at close: stops the readers and the janitor
	idle   time.Duration
	now    func() time.Time

	mu     sync.Mutex
	m      map[string]*watcherEntry
	closed bool
	wg     sync.WaitGroup // reader goroutines, creations and the janitor
}

type watcherEntry struct {
	ready  chan struct{} // closed once the reader exists (or failed)
	reader pulsar.Reader
	stop   context.CancelFunc // ends the reader's goroutine, which then closes the reader
	err    error
	failed time.Time // when the creation failed; a later ensure retries after retryAfter

	// Guarded by watchers.mu.
	waiting  int       // calls that ensured the reader and have not released it
	lastUsed time.Time // when waiting last dropped to 0
}

// retryAfter spaces attempts to create a reader that failed.
const retryAfter = 5 * time.Second

func newWatchers(ctx context.Context, client pulsar.Client, t *table, log *slog.Logger, idle time.Duration) *watchers {
	w := &watchers{client: client, table: t, log: log, ctx: ctx, idle: idle, now: time.Now, m: map[string]*watcherEntry{}}
	w.wg.Go(w.janitor)
	return w
}

// ensure starts reading topic unless a reader does already, and waits (bounded by ctx) until
// the reader is positioned at the topic's end: outputs published after ensure returns are seen.
// The caller calls release once it no longer waits for outputs of topic, whatever the error:
// the reader is kept at least as long as a call holds it.
func (w *watchers) ensure(ctx context.Context, topic string) (release func(), err error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return func() {}, errors.New("closed")
	}
	e, ok := w.m[topic]
	if ok {
		select {
		case <-e.ready:
			if e.err != nil && w.now().Sub(e.failed) >= retryAfter {
				ok = false
			}
		default:
		}
	}
	if !ok {
		e = &watcherEntry{ready: make(chan struct{})}
		w.m[topic] = e
		w.wg.Go(func() { w.start(topic, e) })
	}
	e.waiting++
	w.mu.Unlock()
	release = sync.OnceFunc(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if e.waiting--; e.waiting == 0 {
			e.lastUsed = w.now()
		}
	})
	select {
	case <-e.ready:
		return release, e.err
	case <-ctx.Done():
		return release, ctx.Err()
	}
}

func (w *watchers) start(topic string, e *watcherEntry) {
	r, err := w.client.CreateReader(pulsar.ReaderOptions{
		Topic: topic, StartMessageID: pulsar.LatestMessageID(), ReceiverQueueSize: 1000,
		Name: "fnhost-trigger-fallback",
	})
	w.mu.Lock()
	switch {
	case err != nil:
		e.err, e.failed = fmt.Errorf("reading output topic %s: %w", topic, err), w.now()
	case w.closed:
		r.Close()
		e.err = errors.New("closed")
	default:
		ctx, stop := context.WithCancel(w.ctx)
		e.reader, e.stop = r, stop
		w.wg.Go(func() {
			defer r.Close()
			w.read(ctx, topic, r)
		})
	}
	if e.waiting == 0 {
		e.lastUsed = w.now()
	}
	w.mu.Unlock()
	close(e.ready)
}

// janitor closes, every idle/4, the readers no call has waited on for idle, until close.
func (w *watchers) janitor() {
	t := time.NewTicker(max(w.idle/4, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		now := w.now()
		for topic, e := range w.m {
			select {
			case <-e.ready:
			default:
				continue // being created; its creator holds it
			}
			if e.waiting > 0 || now.Sub(e.lastUsed) < w.idle {
				continue
			}
			delete(w.m, topic)
			if e.stop != nil {
				e.stop() // the reader's goroutine closes it
				w.log.Debug("closed an idle output-topic reader", "topic", topic, "idle", w.idle)
			}
		}
		w.mu.Unlock()
	}
}

// readers returns the number of open readers.
func (w *watchers) readers() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, e := range w.m {
		if e.reader != nil {
			n++
		}
	}
	return n
}

// read matches the outputs of topic with waiting calls until ctx ends.
func (w *watchers) read(ctx context.Context, topic string, r pulsar.Reader) {
	log := w.log.With("topic", topic)
	for {
		m, err := r.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("reading an output topic", "err", err)
			if !sleep.For(ctx, time.Second) {
				return
			}
			continue
		}
		props := m.Properties()
		if _, ok := props[invocation.Seq]; ok {
			continue // an fnhost function: its replies on reply-to are the ones that count
		}
		s, ok := props[invocation.InputMessageID]
		if !ok {
			continue
		}
		k, err := parseInputMessageID(s)
		if err != nil {
			log.Debug("ignoring an output with a malformed input message id", "message_id", m.ID().String(), "err", err)
			continue
		}
		w.table.deliverOutput(k, outputOf(m))
	}
}

// close stops the readers and the janitor (their ctx, w.ctx, has ended or is ending: the
// caller cancels it first) and waits for their goroutines, which close the readers, bounded by
// ctx. Idempotent.
func (w *watchers) close(ctx context.Context) error {
	w.mu.Lock()
	w.closed = true
	for _, e := range w.m {
		select {
		case <-e.ready:
			if e.stop != nil {
				e.stop()
			}
		default:
		}
	}
	w.mu.Unlock()
	waited := make(chan struct{})
	go func() { w.wg.Wait(); close(waited) }()
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("output-topic readers still running: %w", ctx.Err())
	}
}
