// Package host is fnhost's local host runtime: it runs the functions of a set of manifests as
// plugin processes (package pool) and feeds them.
//
// With a Pulsar URL, each function consumes its input topics and publishes its outputs to its
// output topic and to the reply-to topic of each invocation (DESIGN §3), honouring the
// manifest's subscription, ordering, processing guarantee, timeout and retry settings. Without
// one (embedded mode), functions are invoked directly through Invoke, and a function whose output
// topic is another function's input feeds it in process.
package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	pulsarlog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/fnhost/fnhost/functions/pf/plugin"
	"github.com/fnhost/fnhost/internal/engine"
	"github.com/fnhost/fnhost/internal/manifest"
	"github.com/fnhost/fnhost/runtime/build"
	"github.com/fnhost/fnhost/runtime/pool"
)

// ErrFunctionNotFound is returned by Invoke for a function the host does not run.
var ErrFunctionNotFound = errors.New("host: function not found")

// ErrUnavailable wraps invocation errors that produced no result (no process could run it).
var ErrUnavailable = pool.ErrUnavailable

// Config configures a Host.
type Config struct {
	// Functions to run. Required, at least one.
	Functions []*manifest.Function
	// PulsarURL is the broker's service URL; empty means embedded mode.
	PulsarURL string
	// AdminURL is Pulsar's admin REST URL; EFFECTIVELY_ONCE functions need it to check that
	// their output topic deduplicates.
	AdminURL string
	// ClusterName labels metrics. Default "standalone".
	ClusterName string
	// BuildDir receives binaries built from source. Default: the user cache dir + fnhost/functions.
	BuildDir string
	// MaxInFlight bounds the concurrent invocations per plugin process. Default 64.
	MaxInFlight int
	// ShutdownTimeout bounds the wait for in-flight invocations at shutdown. Default 30s.
	ShutdownTimeout time.Duration
	// Registerer receives the runtime's metrics. Default: a new registry (see Host.Registry).
	Registry *prometheus.Registry
	// Logger is the runtime's logger. Default: discard.
	Logger *slog.Logger
	// Progress, if set, receives one line per long step (building a function).
	Progress func(msg string)
	// TracerProvider, when set, traces each invocation: a CONSUMER span per input (Pulsar
	// mode), an INTERNAL span per in-process invocation (embedded), whose context the outputs
	// carry. Default nil: no spans; outputs carry their input's trace context unchanged.
	TracerProvider trace.TracerProvider
}

func (c *Config) setDefaults() error {
	if c.ClusterName == "" {
		c.ClusterName = "standalone"
	}
	if c.BuildDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("finding a build directory (set BuildDir): %w", err)
		}
		c.BuildDir = filepath.Join(dir, "fnhost", "functions")
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = plugin.DefaultMaxInFlight
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Progress == nil {
		c.Progress = func(string) {}
	}
	return nil
}

// Validate reports a configuration the host cannot run.
func (c *Config) Validate() error {
	if len(c.Functions) == 0 {
		return errors.New("host: no functions to run")
	}
	var errs []error
	for _, f := range c.Functions {
		if f.Guarantee == manifest.EffectivelyOnce && c.PulsarURL != "" && c.AdminURL == "" {
			errs = append(errs, &manifest.Error{Path: f.Path, Field: "processingGuarantees",
				Msg: "EFFECTIVELY_ONCE needs the Pulsar admin URL, to check that the output topic deduplicates"})
		}
	}
	return errors.Join(errs...)
}

// Host runs functions. Create it with New, run its Pulsar loops with Run, invoke functions
// directly with Invoke. Its methods are safe for concurrent use.
type Host struct {
	cfg     Config
	metrics *metrics
	client  pulsar.Client // nil in embedded mode
	tracer  trace.Tracer  // nil: tracing off

	mu    sync.RWMutex
	funcs map[string]*function // by fqfn
	order []*function

	chains sync.WaitGroup // embedded output-topic chaining
}

// GCPercent is the garbage collector's target percentage for a process that runs the host
// runtime (fnhost runtime and dev, and make bench, which runs it in process): its live heap is
// small, and with Go's default of 100 the collector took about a fifth of its CPU at full
// input rate, CPU the broker and the plugins need on a small machine. Plugin processes keep
// Go's default (their resident memory matters more). A GOGC in the environment wins; main
// applies it with SetGCPercent.
const GCPercent = 400

// SetGCPercent sets the collector's target to GCPercent unless env (KEY=value pairs) has GOGC.
func SetGCPercent(env []string) {
	for _, kv := range env {
		if strings.HasPrefix(kv, "GOGC=") {
			return
		}
	}
	debug.SetGCPercent(GCPercent)
}

// function is one function's pool and what feeds it.
type function struct {
	m      *manifest.Function
	binary string
	pool   *pool.Pool
	// metrics are Pulsar Functions' metrics of the function's instances (its pool slots).
	metrics *engine.Metrics
	log     *slog.Logger
	runner  *runner // nil in embedded mode
	lastErr string
}

// New builds the functions that come as source, starts their plugin processes and, with a
// Pulsar URL, connects to Pulsar. ctx bounds this start-up. Close the host with Run's end or
// Close.
func New(ctx context.Context, cfg Config) (*Host, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &Host{cfg: cfg, metrics: newMetrics(cfg.Registry), funcs: map[string]*function{}}
	if cfg.TracerProvider != nil {
		h.tracer = cfg.TracerProvider.Tracer(tracerName)
	}
	if cfg.PulsarURL != "" {
		c, err := pulsar.NewClient(pulsar.ClientOptions{
			URL:               cfg.PulsarURL,
			ConnectionTimeout: 10 * time.Second,
			OperationTimeout:  30 * time.Second,
			Logger:            pulsarlog.NewLoggerWithSlog(cfg.Logger.With("component", "pulsar")),
		})
		if err != nil {
			return nil, fmt.Errorf("connecting to Pulsar at %s: %w", cfg.PulsarURL, err)
		}
		h.client = c
	}
	// Functions build and start concurrently, a few at a time: go build is CPU-bound.
	started := make([]*function, len(cfg.Functions))
	errs := make([]error, len(cfg.Functions))
	sem := make(chan struct{}, max(2, goruntime.NumCPU()))
	var wg sync.WaitGroup
	for i, m := range cfg.Functions {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			started[i], errs[i] = h.start(ctx, m)
		})
	}
	wg.Wait()
	for i, f := range started {
		if f == nil {
			continue
		}
		h.funcs[cfg.Functions[i].FQFN()] = f
		h.order = append(h.order, f)
	}
	if err := errors.Join(errs...); err != nil {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
		defer cancel()
		return nil, errors.Join(err, h.Close(closeCtx))
	}
	return h, nil
}

// BinaryFor returns where the host puts the binary it builds for m.
func (h *Host) BinaryFor(m *manifest.Function) string {
	return filepath.Join(h.cfg.BuildDir, m.Tenant, m.Namespace, m.Name)
}

// Build compiles m's source into its binary path (see BinaryFor), reporting progress.
func (h *Host) Build(ctx context.Context, m *manifest.Function) (string, error) {
	if m.Source == "" {
		return m.Binary, nil
	}
	out := h.BinaryFor(m)
	h.cfg.Progress(fmt.Sprintf("building %s from %s", m.FQFN(), m.Source))
	start := time.Now()
	if err := build.Binary(ctx, m.Source, out); err != nil {
		return "", err
	}
	h.cfg.Progress(fmt.Sprintf("built %s in %s", m.FQFN(), time.Since(start).Round(10*time.Millisecond)))
	return out, nil
}

func (h *Host) start(ctx context.Context, m *manifest.Function) (*function, error) {
	bin, err := h.Build(ctx, m)
	if err != nil {
		return nil, err
	}
	log := h.cfg.Logger.With("function", m.FQFN())
	ids := make([]int, m.Parallelism)
	for i := range ids {
		ids[i] = i
	}
	f := &function{m: m, binary: bin, log: log, metrics: engine.NewMetrics(engine.Identity{
		Tenant: m.Tenant, Namespace: m.Namespace, Name: m.Name, Cluster: h.cfg.ClusterName}, ids, time.Now)}
	p, err := pool.Start(ctx, pool.Config{
		Binary: bin,
		Info: plugin.Info{
			Tenant: m.Tenant, Namespace: m.Namespace, Name: m.Name,
			ClusterName: h.cfg.ClusterName,
			InputTopics: slices.Clone(m.Inputs), OutputTopic: m.Output, LogTopic: m.Config.LogTopic,
			UserConfig: m.UserConfig, ManualAck: m.Guarantee == manifest.Manual,
		},
		Parallelism: m.Parallelism,
		MaxInFlight: h.cfg.MaxInFlight,
		MaxProcs:    maxProcs(m),
		PulsarURL:   h.cfg.PulsarURL,
		Logger:      log,
		OnRestart:   func(int) { h.metrics.restarts.WithLabelValues(m.FQFN()).Inc() },
	})
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", m.FQFN(), err)
	}
	f.pool = p
	if err := h.cfg.Registry.Register(f.metrics); err != nil {
		return nil, errors.Join(fmt.Errorf("registering the metrics of %s: %w", m.FQFN(), err), p.Close(ctx))
	}
	if h.client != nil {
		r, err := newRunner(ctx, h, f, log)
		if err != nil {
			closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.ShutdownTimeout)
			defer cancel()
			return nil, errors.Join(fmt.Errorf("starting %s: %w", m.FQFN(), err), p.Close(closeCtx))
		}
		f.runner = r
	}
	return f, nil
}

// Registry returns the registry holding the runtime's metrics.
func (h *Host) Registry() *prometheus.Registry { return h.cfg.Registry }

// Embedded reports whether the host runs without Pulsar.
func (h *Host) Embedded() bool { return h.client == nil }

// Functions returns the manifests of the functions the host runs, in start order.
func (h *Host) Functions() []*manifest.Function {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]*manifest.Function, len(h.order))
	for i, f := range h.order {
		out[i] = f.m
	}
	return out
}

func (h *Host) lookup(fqfn string) (*function, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	f, ok := h.funcs[fqfn]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrFunctionNotFound, fqfn)
	}
	return f, nil
}

// Run runs the Pulsar loops (none in embedded mode) and the 1-minute metric windows until ctx
// ends, then shuts down in order: stop intake, finish in-flight work within ShutdownTimeout,
// flush producers, stop the plugins, close Pulsar. It returns nil after a clean shutdown.
func (h *Host) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	h.mu.RLock()
	for _, f := range h.order {
		if f.runner != nil {
			wg.Go(func() {
				if err := f.runner.run(ctx); err != nil {
					h.cfg.Logger.Error("feeding the function stopped", "function", f.m.FQFN(), "err", err)
				}
			})
		}
	}
	h.mu.RUnlock()
	wg.Go(func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				h.mu.RLock()
				for _, f := range h.order {
					f.metrics.ResetWindow()
				}
				h.mu.RUnlock()
			}
		}
	})
	<-ctx.Done()
	wg.Wait() // intake stopped
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.ShutdownTimeout)
	defer cancel()
	return h.Close(closeCtx)
}

// Close finishes in-flight work bounded by ctx, then stops everything. It is idempotent.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	funcs := h.order
	h.order, h.funcs = nil, map[string]*function{}
	h.mu.Unlock()
	var errs []error
	for _, f := range funcs {
		if f.runner != nil {
			errs = append(errs, f.runner.drain(ctx))
		}
	}
	h.chains.Wait()
	for _, f := range funcs {
		errs = append(errs, f.pool.Close(ctx))
	}
	for _, f := range funcs {
		if f.runner != nil {
			f.runner.close(ctx)
		}
		h.cfg.Registry.Unregister(f.metrics)
	}
	if h.client != nil {
		h.client.Close()
		h.client = nil
	}
	return errors.Join(errs...)
}

// Reload swaps the binary of fqfn for binary without losing an invocation.
func (h *Host) Reload(ctx context.Context, fqfn, binary string) error {
	f, err := h.lookup(fqfn)
	if err != nil {
		return err
	}
	if err := f.pool.Reload(ctx, binary); err != nil {
		h.mu.Lock()
		f.lastErr = err.Error()
		h.mu.Unlock()
		return err
	}
	h.mu.Lock()
	f.binary, f.lastErr = binary, ""
	h.mu.Unlock()
	h.metrics.reloads.WithLabelValues(fqfn).Inc()
	return nil
}

// Rebuild builds fqfn's source again and, when that succeeds, reloads it. A compile error
// leaves the running version in place and is returned.
func (h *Host) Rebuild(ctx context.Context, fqfn string) error {
	f, err := h.lookup(fqfn)
	if err != nil {
		return err
	}
	if f.m.Source == "" {
		return fmt.Errorf("%s runs a binary, not source; replace the binary and call Reload", fqfn)
	}
	// Build to a fresh path: the running processes keep their executable file.
	out := fmt.Sprintf("%s.%d", h.BinaryFor(f.m), time.Now().UnixNano())
	h.cfg.Progress(fmt.Sprintf("rebuilding %s", fqfn))
	if err := build.Binary(ctx, f.m.Source, out); err != nil {
		h.mu.Lock()
		f.lastErr = err.Error()
		h.mu.Unlock()
		return err
	}
	old := f.binary
	if err := h.Reload(ctx, fqfn, out); err != nil {
		return err
	}
	if old != h.BinaryFor(f.m) && old != f.m.Binary {
		_ = os.Remove(old) // an earlier rebuild's file; a leftover does no harm
	}
	h.cfg.Progress(fmt.Sprintf("reloaded %s", fqfn))
	return nil
}

// FunctionStatus describes one function for the status endpoint.
type FunctionStatus struct {
	FQFN      string      `json:"fqfn"`
	Inputs    []string    `json:"inputs"`
	Output    string      `json:"output,omitempty"`
	Source    string      `json:"source,omitempty"`
	Guarantee string      `json:"processingGuarantees"`
	Pool      pool.Status `json:"pool"`
	LastError string      `json:"lastError,omitempty"`
}

// Status describes every function.
func (h *Host) Status() []FunctionStatus {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]FunctionStatus, 0, len(h.order))
	for _, f := range h.order {
		out = append(out, FunctionStatus{
			FQFN: f.m.FQFN(), Inputs: f.m.Inputs, Output: f.m.Output, Source: f.m.Source,
			Guarantee: string(f.m.Guarantee), Pool: f.pool.Status(), LastError: f.lastErr,
		})
	}
	return out
}

// Ready reports whether every function has at least one running process.
func (h *Host) Ready() bool {
	for _, st := range h.Status() {
		up := false
		for _, s := range st.Pool.Slots {
			up = up || s.State == pool.Running
		}
		if !up {
			return false
		}
	}
	return true
}

// Pids returns the plugin process ids of fqfn, by instance (0 when down).
func (h *Host) Pids(fqfn string) ([]int, error) {
	f, err := h.lookup(fqfn)
	if err != nil {
		return nil, err
	}
	return f.pool.Pids(), nil
}

// maxProcs is the GOMAXPROCS of m's plugin processes: its resources.cpu rounded up, as Pulsar
// Functions gives an instance that many CPUs; 0 (the plugin default, one CPU) without it.
func maxProcs(m *manifest.Function) int {
	if r := m.Config.Resources; r != nil && r.CPU > 0 {
		return int(math.Ceil(r.CPU))
	}
	return 0
}
