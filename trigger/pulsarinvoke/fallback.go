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
)

// watchers reads the output topics of functions that may not reply to reply-to, one reader per
// topic, started on first use and stopped by close. Safe for concurrent use.
type watchers struct {
	client pulsar.Client
	table  *table
	log    *slog.Logger
	ctx    context.Context // ends at close: stops the readers

	mu     sync.Mutex
	m      map[string]*watcherEntry
	closed bool
	wg     sync.WaitGroup // reader goroutines and creations
}

type watcherEntry struct {
	ready  chan struct{} // closed once the reader exists (or failed)
	reader pulsar.Reader
	err    error
	failed time.Time // when the creation failed; a later ensure retries after retryAfter
}

// retryAfter spaces attempts to create a reader that failed.
const retryAfter = 5 * time.Second

// ensure starts reading topic unless a reader does already, and waits (bounded by ctx) until
// the reader is positioned at the topic's end: outputs published after ensure returns are seen.
func (w *watchers) ensure(ctx context.Context, topic string) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return errors.New("closed")
	}
	e, ok := w.m[topic]
	if ok {
		select {
		case <-e.ready:
			if e.err != nil && time.Since(e.failed) >= retryAfter {
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
	w.mu.Unlock()
	select {
	case <-e.ready:
		return e.err
	case <-ctx.Done():
		return ctx.Err()
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
		e.err, e.failed = fmt.Errorf("reading output topic %s: %w", topic, err), time.Now()
	case w.closed:
		r.Close()
		e.err = errors.New("closed")
	default:
		e.reader = r
		w.wg.Go(func() { w.read(topic, r) })
	}
	w.mu.Unlock()
	close(e.ready)
}

// read matches the outputs of topic with waiting calls until close.
func (w *watchers) read(topic string, r pulsar.Reader) {
	log := w.log.With("topic", topic)
	for {
		m, err := r.Next(w.ctx)
		if err != nil {
			if w.ctx.Err() != nil {
				return
			}
			log.Warn("reading an output topic", "err", err)
			t := time.NewTimer(time.Second)
			select {
			case <-t.C:
			case <-w.ctx.Done():
				t.Stop()
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

// close stops every reader and waits for their goroutines (bounded by ctx). Idempotent.
func (w *watchers) close(ctx context.Context) error {
	w.mu.Lock()
	w.closed = true
	var readers []pulsar.Reader
	for _, e := range w.m {
		select {
		case <-e.ready:
			if e.reader != nil {
				readers = append(readers, e.reader)
			}
		default:
		}
	}
	w.mu.Unlock()
	waited := make(chan struct{})
	go func() { w.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		return fmt.Errorf("output-topic readers still running: %w", ctx.Err())
	}
	for _, r := range readers {
		r.Close()
	}
	return nil
}
