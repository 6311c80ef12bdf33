package plugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strconv"
	"sync"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/fnhost/fnhost/functions/pf/internal/codec"
)

// Config configures one plugin process.
type Config struct {
	// Path is the function binary. Required.
	Path string
	// Info is the function instance's identity; Info.Name is required.
	Info Info
	// PulsarURL is the Pulsar service URL the plugin uses for NewOutputMessage producers.
	// Empty when the host runs embedded: NewOutputMessage then fails.
	PulsarURL string
	// MaxInFlight bounds the invocations the process runs at once; Invoke blocks beyond it.
	// Default DefaultMaxInFlight (64).
	MaxInFlight int
	// Logger receives go-plugin's client logs and the plugin's own logs, re-levelled from its
	// stderr; its level is sent to the plugin, which drops what the host would. Default: none.
	Logger *slog.Logger
	// StartTimeout bounds the launch until the plugin's handshake (the deadline of Start's ctx
	// shortens it). Default DefaultStartTimeout (30s).
	StartTimeout time.Duration
	// MaxProcs is the plugin process's GOMAXPROCS: how many CPUs its invocations run on at
	// once. Default 1: a plugin process is one function instance, and Pulsar Functions gives
	// an instance one CPU unless its resources say otherwise; a function scales with its
	// parallelism (processes). One CPU also spares the plugin the wake-ups across CPUs of its
	// dispatching goroutines, which cost a third of its CPU time with two. -1 leaves Go's
	// default (every CPU available). A GOMAXPROCS in the host's own environment overrides it.
	MaxProcs int
	// GCPercent is the plugin process's GOGC. Default DefaultGCPercent; -1 leaves Go's default
	// (100). A GOGC in the host's own environment overrides it.
	GCPercent int
	// GRPCPipeline keeps the invocations on the gRPC Pipeline stream even when the plugin
	// offers its data socket, a direct Unix connection that carries the same frames without
	// gRPC's framing and hand-offs (the default, on Linux).
	GRPCPipeline bool
}

// setDefaults fills the zero fields of cfg.
func (cfg *Config) setDefaults() {
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	if cfg.MaxProcs == 0 {
		cfg.MaxProcs = 1
	}
	if cfg.GCPercent == 0 {
		cfg.GCPercent = DefaultGCPercent
	}
}

// DefaultGCPercent is a plugin's GOGC unless Config.GCPercent says otherwise. At Go's 100 the
// echo plugin's collector took about a fifth of its CPU under load, with a live heap of a few
// MiB; at 150 the host runtime's throughput rose by about a tenth in make bench while a
// plugin stayed at 18 MiB resident after 100,000 messages (200 crossed 20 MiB).
const DefaultGCPercent = 150

func (cfg *Config) validate() error {
	switch {
	case cfg.Info.Name == "":
		return errors.New("plugin: Config.Info.Name is empty")
	case cfg.MaxInFlight < 0:
		return fmt.Errorf("plugin: Config.MaxInFlight is %d, want > 0 (0 for the default)", cfg.MaxInFlight)
	case cfg.MaxInFlight > maxMaxInFlight:
		return fmt.Errorf("plugin: Config.MaxInFlight is %d, want at most %d", cfg.MaxInFlight, maxMaxInFlight)
	case cfg.StartTimeout < 0:
		return fmt.Errorf("plugin: Config.StartTimeout is %s, want > 0 (0 for the default)", cfg.StartTimeout)
	case cfg.MaxProcs < -1:
		return fmt.Errorf("plugin: Config.MaxProcs is %d, want > 0, 0 for the default or -1 for Go's", cfg.MaxProcs)
	case cfg.GCPercent < -1:
		return fmt.Errorf("plugin: Config.GCPercent is %d, want > 0, 0 for the default or -1 for Go's", cfg.GCPercent)
	}
	return nil
}

// maxMaxInFlight is the largest MaxInFlight accepted: the plugin and the host each keep a
// channel of that capacity.
const maxMaxInFlight = 1 << 16

// flowWindow is the HTTP/2 flow-control window of the plugin connection, per stream and per
// connection. A fixed window turns off gRPC's bandwidth estimation, which pings the plugin and
// resizes the window while the pipeline is busy; a window this size never holds a burst of
// requests back on a local connection. The plugin sets the same on its side.
const flowWindow = 4 << 20

var dialOptions = []grpc.DialOption{
	grpc.WithInitialWindowSize(flowWindow),
	grpc.WithInitialConnWindowSize(flowWindow),
	// The pipeline's frames are encoded by hand; the bytes are protobuf's (package codec).
	grpc.WithDefaultCallOptions(grpc.ForceCodecV2(codec.Codec{})),
}

// DefaultStartTimeout bounds the launch of a plugin when Config.StartTimeout is 0.
const DefaultStartTimeout = 30 * time.Second

// killTimeout bounds a graceful Kill; then the process gets SIGKILL. go-plugin itself waits 2s
// for a graceful exit, but its shutdown call can hang on a process that does not answer.
const killTimeout = 5 * time.Second

// Process is a running plugin process and the host's connection to it. Its methods are safe
// for concurrent use. The caller owns it and must Kill it.
type Process struct {
	client *Client
	gp     *goplugin.Client
	cmd    *exec.Cmd
	exited <-chan struct{}

	killOnce sync.Once
}

// Start launches the function binary cfg.Path as a go-plugin plugin (gRPC only, not managed
// by go-plugin's global cleanup), configures it and opens its invocation stream. The launch is
// bounded by cfg.StartTimeout and ctx's deadline; Configure by ctx. On error nothing is left
// running.
func Start(ctx context.Context, cfg Config) (*Process, error) {
	cfg.setDefaults()
	if cfg.Path == "" {
		return nil, errors.New("plugin: Config.Path is empty")
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if _, err := cfg.Info.proto(); err != nil {
		return nil, err
	}
	timeout := cfg.StartTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = time.Until(d)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("starting plugin %s: %w", cfg.Path, context.Cause(ctx))
	}
	cmd := exec.Command(cfg.Path)
	// go-plugin appends the host's environment after these, so a GOMAXPROCS or GOGC there
	// wins (exec keeps the last value of a key).
	if cfg.MaxProcs > 0 {
		cmd.Env = append(cmd.Env, "GOMAXPROCS="+strconv.Itoa(cfg.MaxProcs))
	}
	if cfg.GCPercent > 0 {
		cmd.Env = append(cmd.Env, "GOGC="+strconv.Itoa(cfg.GCPercent))
	}
	setProcAttr(cmd)
	gp := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  Handshake,
		Plugins:          PluginSet(nil),
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Logger:           newHCLogger(cfg.Logger),
		StartTimeout:     timeout,
		Managed:          false,
		GRPCDialOptions:  dialOptions,
	})
	rpc, err := gp.Client()
	if err != nil {
		gp.Kill()
		return nil, fmt.Errorf("starting plugin %s: %w", cfg.Path, err)
	}
	raw, err := rpc.Dispense(Name)
	if err != nil {
		gp.Kill()
		return nil, fmt.Errorf("dispensing plugin %s: %w", cfg.Path, err)
	}
	client, ok := raw.(*Client)
	if !ok {
		gp.Kill()
		return nil, fmt.Errorf("dispensing plugin %s: got %T", cfg.Path, raw)
	}
	p := &Process{client: client, gp: gp, cmd: cmd, exited: client.exited.Done()}
	if err := client.Configure(ctx, cfg); err != nil {
		p.Kill()
		return nil, err
	}
	return p, nil
}

// Pid returns the process id of the plugin.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited returns a channel closed when the process has exited, whether it was killed, crashed
// or ended on its own. A supervisor selects on it to notice a crash.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Invoke runs the function for req; see Client.Invoke. When the process dies, Invoke calls in
// flight return ErrExited promptly.
func (p *Process) Invoke(ctx context.Context, req *Request, fn func(Event) error) (Result, error) {
	return p.client.Invoke(ctx, req, fn)
}

// Health asks the plugin for its state; ctx bounds the call.
func (p *Process) Health(ctx context.Context) (Health, error) { return p.client.Health(ctx) }

// Drain stops intake and waits, bounded by ctx, for the invocations in flight; see
// Client.Drain. Kill the process after it.
func (p *Process) Drain(ctx context.Context) error { return p.client.Drain(ctx) }

// MaxInFlight returns the bound on concurrent invocations in effect.
func (p *Process) MaxInFlight() int { return p.client.MaxInFlight() }

// Kill ends the process: the invocations in flight are cancelled (their Invoke calls return
// ErrClosed), the plugin is asked to exit, and after a grace period it is killed. Kill returns
// once the process has exited and go-plugin's goroutines have ended. It is idempotent and
// safe for concurrent use; every call returns only after the first one completed. Call Drain
// first to let the invocations in flight finish.
func (p *Process) Kill() {
	p.killOnce.Do(func() {
		// Close never fails; the error is only there to satisfy io.Closer-like callers.
		_ = p.client.Close()
		done := make(chan struct{})
		go func() {
			defer close(done)
			p.gp.Kill()
		}()
		timer := time.NewTimer(killTimeout)
		defer timer.Stop()
		select {
		case <-done:
		case <-timer.C:
			// The process does not answer go-plugin's shutdown: kill it, which unblocks
			// go-plugin. An error means it has exited meanwhile.
			_ = p.cmd.Process.Kill()
			<-done
		}
	})
}
