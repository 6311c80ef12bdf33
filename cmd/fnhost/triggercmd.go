package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	pulsarlog "github.com/apache/pulsar-client-go/pulsar/log"

	"github.com/fnhost/fnhost/internal/manifest"
	"github.com/fnhost/fnhost/trigger"
	"github.com/fnhost/fnhost/trigger/pulsarinvoke"
)

// triggerConfig is the configuration of fnhost trigger. Each field has an FNHOST_* variable;
// flags override the environment.
type triggerConfig struct {
	Addr      string // FNHOST_ADDR: the listen address
	PulsarURL string // FNHOST_PULSAR_URL
	AdminURL  string // FNHOST_ADMIN_URL: Pulsar's admin REST API; empty: manifests only
	Manifests string // FNHOST_MANIFESTS: functions known without the admin API; may be absent
	// manifestsSet is true when the manifests directory was asked for: then it must exist.
	manifestsSet    bool
	ReplyTopic      string        // FNHOST_REPLY_TOPIC: default a topic of this instance
	StoreTopic      string        // FNHOST_STORE_TOPIC: async invocation records
	LogLevel        slog.Level    // FNHOST_LOG_LEVEL
	ShutdownTimeout time.Duration // FNHOST_SHUTDOWN_TIMEOUT
}

// triggerConfigFromEnv reads the FNHOST_* variables of fnhost trigger over its defaults. It
// shares the parsing of the variables it has in common with dev and runtime.
func triggerConfigFromEnv(env []string) (triggerConfig, error) {
	s, err := serveConfigFromEnv(env)
	c := triggerConfig{
		Addr: s.Addr, PulsarURL: s.PulsarURL, AdminURL: "http://127.0.0.1:8080", Manifests: s.Manifests,
		LogLevel: s.LogLevel, ShutdownTimeout: s.ShutdownTimeout, StoreTopic: s.StoreTopic,
	}
	if c.PulsarURL == "" {
		c.PulsarURL = "pulsar://127.0.0.1:6650"
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "FNHOST_ADMIN_URL":
			c.AdminURL = v
		case "FNHOST_REPLY_TOPIC":
			c.ReplyTopic = v
		case "FNHOST_MANIFESTS":
			c.manifestsSet = true
		}
	}
	return c, err
}

const triggerUsage = `Usage: fnhost trigger [flags]

Runs the HTTP trigger alone, invoking functions through Pulsar topics: a request becomes a
message on the function's input topic and the function's outputs come back from Pulsar,
whether it runs in 'fnhost runtime' or was deployed into Pulsar Functions with pulsar-admin.
Functions are found in the manifests directory, then through Pulsar's admin API.

Flags:
`

// triggerCmd runs the trigger over the Pulsar invoker until ctx ends.
func triggerCmd(ctx context.Context, args, env []string, stdout, stderr io.Writer) error {
	c, err := triggerConfigFromEnv(env)
	if err != nil {
		fmt.Fprintln(stderr, "fnhost:", err)
		return errReported
	}
	fset := flag.NewFlagSet("fnhost trigger", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() {
		fmt.Fprint(fset.Output(), triggerUsage)
		fset.PrintDefaults()
	}
	fset.StringVar(&c.Addr, "addr", c.Addr, "listen address (FNHOST_ADDR)")
	fset.StringVar(&c.PulsarURL, "pulsar-url", c.PulsarURL, "Pulsar service URL (FNHOST_PULSAR_URL)")
	fset.StringVar(&c.AdminURL, "admin-url", c.AdminURL, "Pulsar admin URL, to find deployed functions; empty: manifests only (FNHOST_ADMIN_URL)")
	fset.Func("manifests", "directory of function manifests (FNHOST_MANIFESTS; default "+c.Manifests+", skipped when absent)", func(v string) error {
		c.Manifests, c.manifestsSet = v, true
		return nil
	})
	fset.StringVar(&c.ReplyTopic, "reply-topic", c.ReplyTopic, "topic for replies (FNHOST_REPLY_TOPIC; default: one per instance, removed at exit)")
	fset.StringVar(&c.StoreTopic, "store-topic", c.StoreTopic, "compacted topic of async invocation records (FNHOST_STORE_TOPIC; default "+pulsarinvoke.DefaultStoreTopic+")")
	fset.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "bound on finishing in-flight requests at shutdown (FNHOST_SHUTDOWN_TIMEOUT)")
	fset.TextVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error (FNHOST_LOG_LEVEL)")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(stderr, "fnhost trigger: unexpected argument %q\n", fset.Arg(0))
		return errUsage
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: c.LogLevel}))
	tp, stopTracing, err := startTracing(ctx, "fnhost-trigger", env, logger)
	if err != nil {
		fmt.Fprintln(stderr, "fnhost:", err)
		return errReported
	}
	defer stopTracing() // last: after the trigger and the invoker have ended their spans

	var fns []*manifest.Function
	if _, err := os.Stat(c.Manifests); err == nil || c.manifestsSet {
		fns, err = manifest.LoadDir(c.Manifests)
		if err != nil {
			fmt.Fprintf(stderr, "fnhost: the manifests in %s are not valid:\n%v\n", c.Manifests, err)
			return errReported
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("manifests: %w", err)
	}

	// One client for the invoker and the invocation records; closed last.
	client, err := pulsar.NewClient(pulsar.ClientOptions{
		URL: c.PulsarURL, ConnectionTimeout: 10 * time.Second, OperationTimeout: 30 * time.Second,
		Logger: pulsarlog.NewLoggerWithSlog(logger.With("component", "pulsar")),
	})
	if err != nil {
		fmt.Fprintf(stderr, "fnhost trigger: Pulsar client for %s: %v\n", c.PulsarURL, err)
		return errReported
	}
	defer client.Close()
	startCtx, cancelStart := context.WithTimeout(ctx, 30*time.Second)
	inv, err := pulsarinvoke.New(startCtx, pulsarinvoke.Config{
		Client: client, AdminURL: c.AdminURL, Functions: fns, ReplyTopic: c.ReplyTopic, Logger: logger,
		TracerProvider: tp,
	})
	var store *pulsarinvoke.Store
	if err == nil {
		// Async invocation records live in Pulsar, so any trigger instance serves them and a
		// restart loses none.
		store, err = pulsarinvoke.NewStore(startCtx, pulsarinvoke.StoreConfig{Client: client, Topic: c.StoreTopic, AdminURL: c.AdminURL, Logger: logger})
		if err != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			err = errors.Join(err, inv.Close(cctx))
			cancel()
		}
	}
	cancelStart()
	if err != nil {
		fmt.Fprintf(stderr, "fnhost trigger: cannot reach Pulsar at %s: %v\n", c.PulsarURL, err)
		return errReported
	}
	closeInv := func() error {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return errors.Join(inv.Close(cctx), store.Close(cctx))
	}
	auth, err := authFromEnv(env)
	if err != nil {
		fmt.Fprintln(stderr, "fnhost:", err)
		return errors.Join(errReported, closeInv())
	}
	trig, err := trigger.New(trigger.Config{
		Invoker: inv, Publisher: inv, Store: store, Logger: logger, ShutdownTimeout: c.ShutdownTimeout, Ready: inv.Ready, Auth: auth,
		TracerProvider: tp,
		Addr:           c.Addr, CallbackAllow: callbackAllowFromEnv(env),
		// A record holds the outputs, base64 where binary: keep it within one Pulsar message.
		MaxOutputBytes: 3 << 20,
	})
	var ln net.Listener
	if err == nil {
		var lc net.ListenConfig
		ln, err = lc.Listen(ctx, "tcp", c.Addr)
	}
	if err != nil {
		return errors.Join(fmt.Errorf("trigger: %w", err), closeInv())
	}
	fmt.Fprintf(stdout, "fnhost trigger: listening on http://%s (pulsar %s, admin %s, %d function(s) from manifests, replies on %s)\n",
		ln.Addr(), c.PulsarURL, orNone(c.AdminURL), len(fns), inv.ReplyTopic())
	// Shutdown order: the trigger stops taking requests and finishes its in-flight ones (Serve
	// returns once ctx ends and that is done), then the invoker stops its consumer, readers
	// and producers.
	serveErr := trig.Serve(ctx, ln)
	return errors.Join(serveErr, closeInv())
}

// callbackAllowFromEnv reads FNHOST_TRIGGER_CALLBACK_ALLOW: comma-separated IPs, CIDRs, host
// names and *.domain patterns that callbacks may target besides public addresses
// (trigger.Config.CallbackAllow, which checks them).
func callbackAllowFromEnv(env []string) []string {
	var allow []string
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == "FNHOST_TRIGGER_CALLBACK_ALLOW" {
			allow = nil // the last assignment wins, as in a shell
			for e := range strings.SplitSeq(v, ",") {
				if e = strings.TrimSpace(e); e != "" {
					allow = append(allow, e)
				}
			}
		}
	}
	return allow
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
