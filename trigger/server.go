package trigger

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"
)

//go:embed openapi.yaml
var openAPI []byte

// keyStatus is the gin context key of the status to record when the written one does not tell
// (streams).
const keyStatus = "fnhost.status"

// The routes that name a function: the function label of metrics and spans comes from their
// parameters (see functionLabel).
const (
	routeInvoke      = "/v1/functions/:tenant/:namespace/:name/invoke"
	routeInvokeShort = "/function/:name"
	routeFunction    = "/v1/functions/:tenant/:namespace/:name"
)

// Server is the HTTP trigger service. Create it with New; serve it with Run (or Serve, or
// Handler for embedding); stop it by cancelling Run's ctx (or with Shutdown).
type Server struct {
	cfg      Config
	log      *slog.Logger
	engine   *gin.Engine
	store    InvocationStore
	journals *journals
	slots    chan struct{} // one token per sync or streaming invocation in flight
	async    *taskGroup
	metrics  *metrics
	auth     *authenticator // nil: authentication off
	tracer   trace.Tracer   // nil: tracing off
	callback *callbackPolicy
	stopping atomic.Bool
	// streams are the streamed invocations, which outlive a caller that drops (see
	// invokeStream); bounded by the slots already.
	streams *taskGroup
}

// New checks cfg and builds the server and its routes. It does not listen.
//
// gin prints debug lines unless its mode is release; that switch is global, so the program's
// main sets it (gin.SetMode(gin.ReleaseMode)), not New.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Auth.Disabled && !loopback(cfg.Addr) {
		cfg.Logger.Warn("authentication disabled on a non-loopback address", "addr", cfg.Addr)
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger, store: cfg.Store, journals: newJournals(&cfg),
		slots: make(chan struct{}, cfg.MaxConcurrent), async: newTaskGroup(cfg.MaxAsync),
		auth: newAuthenticator(cfg.Auth), callback: newCallbackPolicy(&cfg, newAuthenticator(cfg.Auth) == nil),
	}
	s.streams = newTaskGroup(cfg.MaxConcurrent)
	if s.store == nil {
		s.store = NewMemoryStore(cfg.RecordLimit, cfg.RecordTTL)
	}
	s.metrics = newMetrics(func() float64 { return float64(s.async.running()) })
	if cfg.TracerProvider != nil {
		s.tracer = cfg.TracerProvider.Tracer(tracerName)
	}
	s.engine = s.routes()
	return s, nil
}

func (s *Server) routes() *gin.Engine {
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true
	if s.tracer != nil {
		// First, so that the span sees the status recovery writes for a panic.
		e.Use(s.traceRequest)
	}
	e.Use(s.recovery, s.instrument)
	e.NoRoute(func(c *gin.Context) {
		s.writeError(c, newAPIError(http.StatusNotFound, codeNotFound, "no route %s %s", c.Request.Method, c.Request.URL.Path))
	})
	e.NoMethod(func(c *gin.Context) {
		s.writeError(c, newAPIError(http.StatusMethodNotAllowed, codeMethodNotAllowed,
			"method %s is not allowed on %s (allowed: %s)", c.Request.Method, c.Request.URL.Path, c.Writer.Header().Get("Allow")))
	})

	invoke, publish, read := s.authorize(invokeScope), s.authorize(publishScope), s.authorize(readScope)
	e.POST(routeInvoke, invoke, s.handleInvoke)
	e.POST(routeInvokeShort, invoke, s.handleInvoke)
	e.GET("/v1/functions", read, s.handleFunctions)
	e.GET(routeFunction, read, s.handleFunction)
	// An invocation's record and events: read, or invoke on its function, so that a caller
	// can fetch and resume what it started.
	e.GET("/v1/invocations/:id", s.authorize(s.invocationScope), s.handleRecord)
	e.GET("/v1/invocations/:id/events", s.authorize(s.invocationScope), s.handleEvents)
	e.POST("/v1/topics/:tenant/:namespace/:topic", publish, s.handlePublish)
	// Open: probes, metrics and the API description.
	e.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	e.GET("/readyz", s.handleReady)
	e.GET("/metrics", gin.WrapH(promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})))
	e.GET("/openapi.yaml", func(c *gin.Context) { c.Data(http.StatusOK, "application/yaml", openAPI) })
	return e
}

func (s *Server) handleReady(c *gin.Context) {
	if s.stopping.Load() {
		s.writeError(c, newAPIError(http.StatusServiceUnavailable, codeNotReady, "shutting down"))
		return
	}
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(c.Request.Context()); err != nil {
			s.writeError(c, newAPIError(http.StatusServiceUnavailable, codeNotReady, "%v", err))
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

// recovery turns a handler panic into a 500 JSON error (when nothing was written yet) and an
// Error log, so one bad request never takes the process down.
func (s *Server) recovery(c *gin.Context) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if r == http.ErrAbortHandler { //nolint:errorlint // a sentinel value, compared as net/http does
			panic(r)
		}
		s.log.Error("handler panic", "method", c.Request.Method, "path", c.Request.URL.Path,
			"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		if !c.Writer.Written() {
			e := newAPIError(http.StatusInternalServerError, codeInternal, "internal error")
			e.InvocationID = c.Writer.Header().Get(headerInvocationID)
			s.writeError(c, e)
		} else {
			c.Abort()
		}
	}()
	c.Next()
}

// Handler returns the HTTP handler of all routes, for tests and embedding.
func (s *Server) Handler() http.Handler { return s.engine }

// Run listens on Config.Addr and serves until ctx is cancelled, then shuts down gracefully
// (see Serve).
func (s *Server) Run(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("trigger: listening on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is cancelled. Then, within Config.ShutdownTimeout: /readyz
// turns 503, the listener closes, in-flight requests finish, async invocations (and their
// callbacks) finish. What is still running at the bound is cancelled, and Serve returns an
// error saying so. Serve closes ln.
//
// Like New for Config.Addr, Serve refuses a TCP listener on a non-loopback address while
// authentication is off, unless Auth.Disabled is set.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := s.checkListener(ln); err != nil {
		return errors.Join(err, ln.Close())
	}
	if a, ok := ln.Addr().(*net.TCPAddr); ok && !a.IP.IsLoopback() {
		s.callback.loopback.Store(false) // reachable from elsewhere: loopback callbacks are not local development
	}
	srv := &http.Server{
		Handler:           s.engine,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1) // buffered: the goroutine never blocks, even if nobody reads
	go func() { served <- srv.Serve(ln) }()
	s.log.Info("trigger listening", "addr", ln.Addr().String())

	var serveErr error
	select {
	case serveErr = <-served:
	case <-ctx.Done():
	}
	s.stopping.Store(true)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	var errs []error
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		errs = append(errs, fmt.Errorf("trigger: serving: %w", serveErr))
	}
	if err := srv.Shutdown(sctx); err != nil {
		errs = append(errs, fmt.Errorf("trigger: in-flight requests at the shutdown bound %s: %w", s.cfg.ShutdownTimeout, err))
		s.streams.cancelAll()
		if cerr := srv.Close(); cerr != nil {
			errs = append(errs, fmt.Errorf("trigger: closing connections: %w", cerr))
		}
	}
	if serveErr == nil {
		<-served // Serve returns ErrServerClosed promptly once Shutdown or Close ran
	}
	if err := s.Shutdown(sctx); err != nil {
		errs = append(errs, err)
	}
	s.log.Info("trigger stopped")
	return errors.Join(errs...)
}

// Shutdown marks the server not ready, refuses new async and streamed invocations and waits
// for the running ones (async ones with their callbacks; streamed ones whose callers may have
// left) until ctx is done; then it cancels them, waits a short grace for them to record their
// end, and returns an error naming how many were cut.
// Use it when serving through Handler; Serve calls it itself. It is idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopping.Store(true)
	err := s.waitTasks(ctx)
	if err == nil {
		return nil
	}
	na, ns := s.async.running(), s.streams.running()
	s.async.cancelAll()
	s.streams.cancelAll()
	grace, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelGrace)
	defer cancel()
	if werr := s.waitTasks(grace); werr != nil {
		return fmt.Errorf("trigger: %d async invocations and %d streams still running after cancel: %w",
			s.async.running(), s.streams.running(), werr)
	}
	return fmt.Errorf("trigger: cancelled %d async invocations and %d streams at the shutdown bound: %w", na, ns, err)
}

// waitTasks waits, until ctx is done, for the async and streamed invocations to end.
func (s *Server) waitTasks(ctx context.Context) error {
	if err := s.async.wait(ctx); err != nil {
		return err
	}
	return s.streams.wait(ctx)
}

// cancelGrace is how long Shutdown waits for cancelled async invocations to wind up.
const cancelGrace = 2 * time.Second
