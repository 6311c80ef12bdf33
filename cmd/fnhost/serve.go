package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	pulsarlog "github.com/apache/pulsar-client-go/pulsar/log"
	"go.opentelemetry.io/otel/trace"

	"github.com/fnhost/fnhost/internal/manifest"
	"github.com/fnhost/fnhost/runtime/admin"
	"github.com/fnhost/fnhost/runtime/build"
	"github.com/fnhost/fnhost/runtime/host"
	"github.com/fnhost/fnhost/trigger"
	"github.com/fnhost/fnhost/trigger/pulsarinvoke"
)

// serveFlags binds the flags of dev (withTrigger) or runtime over c, whose values are the
// defaults (from the environment).
func serveFlags(name string, c *serveConfig, withTrigger bool, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("fnhost "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if withTrigger {
		fs.StringVar(&c.Addr, "addr", c.Addr, "the HTTP trigger's listen address (FNHOST_ADDR)")
		fs.BoolVar(&c.Watch, "watch", c.Watch, "rebuild and reload a function when its source changes (FNHOST_WATCH)")
		fs.StringVar(&c.StoreTopic, "store-topic", c.StoreTopic, "with --pulsar-url: compacted topic of async invocation records (FNHOST_STORE_TOPIC; default "+pulsarinvoke.DefaultStoreTopic+")")
	}
	fs.StringVar(&c.AdminAddr, "admin-addr", c.AdminAddr, "metrics, health and status listen address (FNHOST_ADMIN_ADDR)")
	fs.StringVar(&c.Manifests, "manifests", c.Manifests, "directory of function manifests (FNHOST_MANIFESTS)")
	fs.StringVar(&c.PulsarURL, "pulsar-url", c.PulsarURL, "Pulsar service URL; empty runs embedded, without Pulsar (FNHOST_PULSAR_URL)")
	fs.StringVar(&c.AdminURL, "admin-url", c.AdminURL, "Pulsar admin REST URL, to check deduplication for EFFECTIVELY_ONCE (FNHOST_ADMIN_URL)")
	fs.StringVar(&c.BuildDir, "build-dir", c.BuildDir, "where functions built from source go (FNHOST_BUILD_DIR; default: the user cache)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "bound on finishing in-flight work at shutdown (FNHOST_SHUTDOWN_TIMEOUT)")
	fs.IntVar(&c.MaxInFlight, "max-in-flight", c.MaxInFlight, "concurrent invocations per plugin process (FNHOST_MAX_IN_FLIGHT)")
	fs.TextVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error (FNHOST_LOG_LEVEL)")
	return fs
}

const devUsage = `Usage: fnhost dev [flags]

Runs every function of the manifests directory and the HTTP trigger in one process. With no
Pulsar URL (the default) functions are invoked in process: nothing else is needed. Functions
given as source (go: functions/<name>) are built first and, with --watch, rebuilt and swapped
in when their source changes, without losing an invocation.

Flags:
`

const runtimeUsage = `Usage: fnhost runtime [flags]

Runs every function of the manifests directory as plugin processes fed from Pulsar topics:
each consumes its inputs and publishes to its output topic, with the manifest's subscription,
ordering, guarantees, timeout and retries. Serves metrics, health and status on --admin-addr.

Flags:
`

// dev runs the runtime and the trigger in one process.
func dev(ctx context.Context, args []string, env []string, stdout, stderr io.Writer) error {
	return serve(ctx, "dev", devUsage, true, args, env, stdout, stderr)
}

// runtimeCmd runs the host runtime against Pulsar.
func runtimeCmd(ctx context.Context, args []string, env []string, stdout, stderr io.Writer) error {
	return serve(ctx, "runtime", runtimeUsage, false, args, env, stdout, stderr)
}

func serve(ctx context.Context, name, usage string, withTrigger bool, args, env []string, stdout, stderr io.Writer) error {
	c, err := serveConfigFromEnv(env)
	if err != nil {
		fmt.Fprintln(stderr, "fnhost:", err)
		return errReported
	}
	if !withTrigger && c.PulsarURL == "" {
		c.PulsarURL = "pulsar://127.0.0.1:6650"
	}
	fs := serveFlags(name, &c, withTrigger, stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "fnhost %s: unexpected argument %q\n", name, fs.Arg(0))
		return errUsage
	}
	if !withTrigger && c.PulsarURL == "" {
		fmt.Fprintln(stderr, "fnhost runtime: --pulsar-url is empty; the runtime feeds functions from Pulsar (use fnhost dev to run without it)")
		return errUsage
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: c.LogLevel}))
	progress := func(msg string) { fmt.Fprintf(stderr, "fnhost: %s\n", msg) }
	tp, stopTracing, err := startTracing(ctx, "fnhost-"+name, env, logger)
	if err != nil {
		fmt.Fprintln(stderr, "fnhost:", err)
		return errReported
	}
	defer stopTracing() // last: after the trigger and the runtime have ended their spans

	fns, err := manifest.LoadDir(c.Manifests)
	if err != nil {
		fmt.Fprintf(stderr, "fnhost: the manifests in %s are not valid:\n%v\n", c.Manifests, err)
		return errReported
	}
	mode := "embedded"
	if c.PulsarURL != "" {
		mode = "pulsar " + c.PulsarURL
	}
	progress(fmt.Sprintf("starting %d function(s) from %s (%s)", len(fns), c.Manifests, mode))
	startCtx, cancelStart := context.WithTimeout(ctx, 10*time.Minute)
	h, err := host.New(startCtx, host.Config{
		Functions: fns, PulsarURL: c.PulsarURL, AdminURL: c.AdminURL, BuildDir: c.BuildDir,
		MaxInFlight: c.MaxInFlight, ShutdownTimeout: c.ShutdownTimeout,
		Logger: logger, Progress: progress, TracerProvider: tp,
	})
	cancelStart()
	if err != nil {
		return err
	}

	adminLn, err := net.Listen("tcp", c.AdminAddr)
	if err != nil {
		return errors.Join(fmt.Errorf("admin endpoints: %w", err), closeHost(h, c.ShutdownTimeout))
	}
	adminSrv := &http.Server{Handler: admin.Handler(h, modeName(h)), ReadHeaderTimeout: 10 * time.Second}

	var trig *trigger.Server
	var trigLn net.Listener
	// With a Pulsar URL, dev's trigger goes through the functions' topics like fnhost trigger
	// does; embedded, it invokes the plugins in process.
	var invoker trigger.Invoker = hostInvoker{h}
	var publisher trigger.Publisher
	var store trigger.InvocationStore // nil: in memory
	maxOutput := int64(0)             // the trigger's default
	closeInvoker := func() error { return nil }
	if withTrigger && c.PulsarURL != "" {
		p, err := startPulsarTrigger(ctx, c, fns, logger, tp)
		if err != nil {
			return errors.Join(fmt.Errorf("trigger: connecting to Pulsar: %w", err), closeHost(h, c.ShutdownTimeout))
		}
		invoker, publisher, store, closeInvoker = p.inv, p.inv, p.store, p.close
		// A record holds the outputs, base64 where binary: keep it within one Pulsar message.
		maxOutput = 3 << 20
	}
	defer func() {
		if err := closeInvoker(); err != nil {
			logger.Warn("closing the Pulsar invoker", "err", err)
		}
	}()
	if withTrigger {
		auth, err := authFromEnv(env)
		if err != nil {
			fmt.Fprintln(stderr, "fnhost:", err)
			return errors.Join(errReported, closeHost(h, c.ShutdownTimeout))
		}
		trig, err = trigger.New(trigger.Config{
			Invoker: invoker, Publisher: publisher, Store: store, MaxOutputBytes: maxOutput,
			Logger: logger, ShutdownTimeout: c.ShutdownTimeout, Auth: auth,
			Addr: c.Addr, CallbackAllow: callbackAllowFromEnv(env), TracerProvider: tp,
			Ready: func(context.Context) error {
				if !h.Ready() {
					return errors.New("a function has no running process")
				}
				return nil
			},
		})
		if err == nil {
			trigLn, err = net.Listen("tcp", c.Addr)
		}
		if err != nil {
			_ = adminLn.Close() // unused; the trigger error is the one to report
			return errors.Join(fmt.Errorf("trigger: %w", err), closeHost(h, c.ShutdownTimeout))
		}
	}

	// Shutdown order: the trigger stops taking requests and finishes its in-flight ones, then
	// the runtime stops intake, finishes its work and stops the plugins, then the admin
	// endpoints go.
	hostCtx, stopHost := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHost()
	var (
		wg                 sync.WaitGroup
		hostErr, adminErr  error
		trigErr            error
		hostDone, trigDone = make(chan struct{}), make(chan struct{})
	)
	wg.Go(func() {
		defer close(hostDone)
		hostErr = h.Run(hostCtx)
	})
	wg.Go(func() {
		if err := adminSrv.Serve(adminLn); !errors.Is(err, http.ErrServerClosed) {
			adminErr = fmt.Errorf("admin endpoints: %w", err)
		}
	})
	trigCtx, stopTrig := context.WithCancel(ctx)
	defer stopTrig()
	if withTrigger {
		wg.Go(func() {
			defer close(trigDone)
			trigErr = trig.Serve(trigCtx, trigLn)
		})
		if c.Watch {
			wg.Go(func() { watch(trigCtx, h, fns, progress) })
		}
	} else {
		close(trigDone)
	}

	fmt.Fprintf(stdout, "fnhost %s: %d function(s) running (%s); status: http://%s/v1/status\n", name, len(fns), mode, adminLn.Addr())
	if withTrigger {
		example := fns[0].Name
		for _, f := range fns {
			if f.Name == "echo" {
				example = "echo"
			}
		}
		fmt.Fprintf(stdout, "fnhost dev: invoke functions at http://%s/function/<name>, e.g.\n  curl -s -d 'hello fnhost' http://%s/function/%s\n", trigLn.Addr(), trigLn.Addr(), example)
	}

	var trigStopped <-chan struct{} // nil without a trigger: never ready
	if withTrigger {
		trigStopped = trigDone
	}
	select {
	case <-ctx.Done():
	case <-hostDone: // the runtime stopped on its own: an error
	case <-trigStopped:
	}
	progress("shutting down")
	stopTrig()
	// Shutdown order: the trigger stops taking requests and finishes its in-flight ones (it
	// watches ctx, with its own bound), then the runtime stops intake, finishes its work within
	// ShutdownTimeout and stops the plugins, then the admin endpoints go.
	<-trigDone
	stopHost()
	<-hostDone
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	shutdownErr := adminSrv.Shutdown(shutdownCtx)
	wg.Wait()
	progress("stopped")
	return errors.Join(trigErr, hostErr, adminErr, shutdownErr)
}

// pulsarTrigger is what dev's trigger uses with a Pulsar URL, as fnhost trigger does: the
// Pulsar invoker, and async invocation records in Pulsar (any trigger on the same store topic
// answers for them, and a restart loses none), over one client.
type pulsarTrigger struct {
	client pulsar.Client
	inv    *pulsarinvoke.Invoker
	store  *pulsarinvoke.Store
}

func startPulsarTrigger(ctx context.Context, c serveConfig, fns []*manifest.Function, logger *slog.Logger, tp trace.TracerProvider) (*pulsarTrigger, error) {
	client, err := pulsar.NewClient(pulsar.ClientOptions{
		URL: c.PulsarURL, ConnectionTimeout: 10 * time.Second, OperationTimeout: 30 * time.Second,
		Logger: pulsarlog.NewLoggerWithSlog(logger.With("component", "pulsar")),
	})
	if err != nil {
		return nil, fmt.Errorf("pulsar client for %s: %w", c.PulsarURL, err)
	}
	p := &pulsarTrigger{client: client}
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	p.inv, err = pulsarinvoke.New(startCtx, pulsarinvoke.Config{Client: client, Functions: fns, Logger: logger, TracerProvider: tp})
	if err == nil {
		p.store, err = pulsarinvoke.NewStore(startCtx, pulsarinvoke.StoreConfig{
			Client: client, Topic: c.StoreTopic, AdminURL: c.AdminURL, Logger: logger,
		})
	}
	if err != nil {
		return nil, errors.Join(err, p.close())
	}
	return p, nil
}

// close closes the invoker and the store (bounded), then the client. Idempotent as its parts are.
func (p *pulsarTrigger) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	if p.inv != nil {
		errs = append(errs, p.inv.Close(ctx))
	}
	if p.store != nil {
		errs = append(errs, p.store.Close(ctx))
	}
	p.client.Close()
	return errors.Join(errs...)
}

func modeName(h *host.Host) string {
	if h.Embedded() {
		return "embedded"
	}
	return "pulsar"
}

func closeHost(h *host.Host, bound time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	return h.Close(ctx)
}

// watch rebuilds and reloads a function when the newest modification time of its source
// changes, polling twice a second, until ctx ends. A build error is printed and the running
// version stays.
func watch(ctx context.Context, h *host.Host, fns []*manifest.Function, progress func(string)) {
	seen := map[string]int64{}
	for _, f := range fns {
		if f.Source != "" {
			seen[f.FQFN()], _ = build.Newest(f.Source) // 0 on error: the next poll tells
		}
	}
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, f := range fns {
			if f.Source == "" {
				continue
			}
			n, err := build.Newest(f.Source)
			if err != nil || n == seen[f.FQFN()] {
				continue
			}
			seen[f.FQFN()] = n
			if err := h.Rebuild(ctx, f.FQFN()); err != nil {
				if ctx.Err() != nil {
					return
				}
				progress(fmt.Sprintf("%s: keeping the running version: %v", f.FQFN(), err))
			}
		}
	}
}
