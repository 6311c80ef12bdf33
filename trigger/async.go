package trigger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

var (
	errAsyncFull   = errors.New("trigger: async invocation limit reached")
	errAsyncClosed = errors.New("trigger: shutting down")
)

// taskGroup owns invocations that outlive their HTTP request: async invocations, and streamed
// ones whose caller may leave. It bounds their number, cancels them all on a hard stop and
// lets shutdown wait for them.
type taskGroup struct {
	limit int

	mu      sync.Mutex
	cancels map[string]context.CancelFunc
	closed  bool
	idle    chan struct{} // made by close; closed when closed and nothing runs
}

func newTaskGroup(limit int) *taskGroup {
	return &taskGroup{limit: limit, cancels: map[string]context.CancelFunc{}}
}

// start registers invocation id, whose goroutine the caller starts next and which calls done.
func (g *taskGroup) start(id string, cancel context.CancelFunc) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.closed:
		return errAsyncClosed
	case len(g.cancels) >= g.limit:
		return errAsyncFull
	}
	g.cancels[id] = cancel
	return nil
}

func (g *taskGroup) done(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.cancels, id)
	if g.closed && len(g.cancels) == 0 {
		closeOnce(g.idle)
	}
}

func (g *taskGroup) running() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.cancels)
}

// close refuses new invocations; it is idempotent.
func (g *taskGroup) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed {
		g.closed, g.idle = true, make(chan struct{})
	}
	if len(g.cancels) == 0 {
		closeOnce(g.idle)
	}
}

// wait returns when every invocation has finished, or ctx's error.
func (g *taskGroup) wait(ctx context.Context) error {
	g.close()
	select {
	case <-g.idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// cancelAll cancels every running invocation (and its callback delivery).
func (g *taskGroup) cancelAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, cancel := range g.cancels {
		cancel()
	}
}

func closeOnce(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// startAsync answers 202 and runs the invocation in a goroutine owned by the server's
// taskGroup. It keeps the record in the store, the outputs in the replay buffer (for GET
// /v1/invocations/{id}/events) and delivers the callback, if any.
func (s *Server) startAsync(c *gin.Context, fn Function, req *Request, callbackURL string) {
	// The invocation outlives the HTTP request: keep the request's values, not its cancellation.
	base, cancel := context.WithCancel(context.WithoutCancel(c.Request.Context()))
	if err := s.async.start(req.ID, cancel); err != nil {
		cancel()
		status, code := http.StatusTooManyRequests, codeTooManyRequests
		if errors.Is(err, errAsyncClosed) {
			status, code = http.StatusServiceUnavailable, codeUnavailable
		}
		e := newAPIError(status, code, "%v", err)
		e.retryAfter, e.InvocationID = true, req.ID
		s.writeError(c, e)
		return
	}
	rec := Invocation{ID: req.ID, Function: fn, Status: StatusAccepted, AcceptedAt: time.Now(), Deadline: req.Deadline}
	if err := s.store.Put(c.Request.Context(), rec); err != nil {
		s.async.done(req.ID)
		cancel()
		e := newAPIError(http.StatusServiceUnavailable, codeUnavailable, "recording invocation %s: %v", req.ID, err)
		e.retryAfter, e.InvocationID = true, req.ID
		s.writeError(c, e)
		return
	}
	j := s.journals.add(req.ID, fn)
	go s.runAsync(base, cancel, fn, req, rec, j, callbackURL)

	loc := "/v1/invocations/" + req.ID
	c.Header("Location", loc)
	c.Header("Preference-Applied", "respond-async")
	c.JSON(http.StatusAccepted, gin.H{"id": req.ID, "status": StatusAccepted, "location": loc,
		"events": loc + "/events"})
}

// runAsync is the goroutine of one async invocation.
func (s *Server) runAsync(base context.Context, cancel context.CancelFunc, fn Function, req *Request,
	rec Invocation, j *journal, callbackURL string) {
	defer s.async.done(req.ID)
	defer cancel()
	log := s.log.With("function", fn.String(), "invocation_id", req.ID)

	started := time.Now()
	rec.Status, rec.StartedAt = StatusRunning, &started
	s.putRecord(base, log, rec)

	ctx, cancelInvoke := context.WithDeadline(base, req.Deadline)
	var size, n int64
	emit := func(o Output) error {
		if n == 0 {
			s.metrics.observeFirstOutput(fn, time.Since(started))
		}
		if len(rec.Outputs) > 0 && o.Attempt != rec.Outputs[0].Attempt {
			// The function was retried: the record keeps the retry's outputs only. The journal,
			// read by event streams, keeps numbering and marks the restart.
			rec.Outputs, size = nil, 0
		}
		if size += int64(len(o.Payload)); size > s.cfg.MaxOutputBytes {
			return s.outputTooLarge(req.ID)
		}
		o.Seq = n
		n++
		j.append(o)
		rec.Outputs = append(rec.Outputs, o)
		return nil
	}
	res, err := s.cfg.Invoker.Invoke(ctx, fn, req, emit)
	attempt := 0
	if len(rec.Outputs) > 0 {
		attempt = rec.Outputs[0].Attempt
	}
	if err == nil && res.Attempt != attempt {
		rec.Outputs, attempt = nil, res.Attempt // the retry that ended it emitted none
	}
	rec.Attempt = attempt
	end := outcome(req, res, err, int64(len(rec.Outputs)))
	end.Attempt = attempt
	cancelInvoke()
	finished := time.Now()
	j.finish(end, finished)
	rec.FinishedAt = &finished
	switch {
	case end.Err == nil:
		rec.Status = StatusSucceeded
	case end.Err.Code == codeDeadline:
		rec.Status = StatusTimedOut
	default:
		rec.Status = StatusFailed
	}
	if end.Err != nil {
		rec.Error = &ErrorInfo{Code: end.Err.Code, Message: end.Err.Message}
		log.Debug("async invocation failed", "code", end.Err.Code, "err", errOr(err, end.Err))
	}
	s.putRecord(base, log, rec)
	if callbackURL == "" {
		return
	}
	if err := s.deliver(base, rec, callbackURL); err != nil {
		level := slog.LevelWarn
		if errors.Is(err, context.Canceled) {
			level = slog.LevelInfo
		}
		log.Log(base, level, "callback not delivered", "callback_url", callbackURL, "err", err)
	}
}

func (s *Server) putRecord(ctx context.Context, log *slog.Logger, rec Invocation) {
	if err := s.store.Put(ctx, rec); err != nil {
		log.Warn("invocation record not stored", "status", rec.Status, "err", fmt.Errorf("storing invocation %s: %w", rec.ID, err))
	}
}
