package instance

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
)

// logQueue is how many log records may wait to be shipped. When it is full, records are
// dropped (and counted): shipping logs must never slow the function down.
const logQueue = 1024

type logRecord struct {
	level slog.Level
	data  []byte
}

// logShipper sends the function's log records, as JSON, to the function's log topic with the
// properties Java's log appender sets: loglevel, instance and fqn.
type logShipper struct {
	q       chan logRecord // closed by stop
	dropped atomic.Int64

	mu      sync.Mutex // serialises capture (the JSON handler writes into buf) and guards stopped
	buf     bytes.Buffer
	stopped bool
}

func newLogShipper() *logShipper { return &logShipper{q: make(chan logRecord, logQueue)} }

// handler returns a slog handler that ships records at level or above.
func (s *logShipper) handler(level slog.Leveler) slog.Handler {
	return &shipHandler{s: s, inner: slog.NewJSONHandler(&s.buf, &slog.HandlerOptions{Level: level})}
}

// stop ends intake; run then ships what is queued and returns. Idempotent.
func (s *logShipper) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		s.stopped = true
		close(s.q)
	}
}

// run ships records until stop, then flushes the producer within ctx. It owns producer.
func (s *logShipper) run(ctx context.Context, producer pulsar.Producer, info *call.Info, stderr *slog.Logger) {
	defer producer.Close()
	instance, fqn := strconv.Itoa(info.InstanceID), info.FQFN()
	var failed atomic.Bool
	for r := range s.q {
		producer.SendAsync(ctx, &pulsar.ProducerMessage{
			Payload:    r.data,
			Properties: map[string]string{"loglevel": r.level.String(), "instance": instance, "fqn": fqn},
		}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			// Report the first failure only, on stderr: logging it through the shipped
			// logger would feed the failure back into the log topic.
			if err != nil && failed.CompareAndSwap(false, true) {
				stderr.Warn("shipping logs to the log topic", "topic", info.LogTopic, "err", err)
			}
		})
	}
	fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := producer.FlushWithCtx(fctx); err != nil && !errors.Is(err, context.Canceled) {
		stderr.Warn("flushing the log topic", "topic", info.LogTopic, "err", err)
	}
	if n := s.dropped.Load(); n > 0 {
		stderr.Warn("log records dropped because the log topic could not keep up", "topic", info.LogTopic, "dropped", n)
	}
}

type shipHandler struct {
	s     *logShipper
	inner slog.Handler
}

func (h *shipHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

func (h *shipHandler) Handle(ctx context.Context, r slog.Record) error {
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped { // stop closes q under mu, so q is open below
		return nil
	}
	s.buf.Reset()
	if err := h.inner.Handle(ctx, r); err != nil {
		return err
	}
	rec := logRecord{level: r.Level, data: bytes.Clone(bytes.TrimRight(s.buf.Bytes(), "\n"))}
	select {
	case s.q <- rec:
	default:
		s.dropped.Add(1)
	}
	return nil
}

func (h *shipHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &shipHandler{s: h.s, inner: h.inner.WithAttrs(as)}
}

func (h *shipHandler) WithGroup(name string) slog.Handler {
	return &shipHandler{s: h.s, inner: h.inner.WithGroup(name)}
}

// tee sends every record to all handlers.
type tee []slog.Handler

func (t tee) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range t {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (t tee) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	for _, h := range t {
		if h.Enabled(ctx, r.Level) {
			errs = append(errs, h.Handle(ctx, r.Clone()))
		}
	}
	return errors.Join(errs...)
}

func (t tee) WithAttrs(as []slog.Attr) slog.Handler {
	out := make(tee, len(t))
	for i, h := range t {
		out[i] = h.WithAttrs(as)
	}
	return out
}

func (t tee) WithGroup(name string) slog.Handler {
	out := make(tee, len(t))
	for i, h := range t {
		out[i] = h.WithGroup(name)
	}
	return out
}
