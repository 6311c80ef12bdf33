// Package pluginserve is the plugin half of the fnhost plugin protocol: it serves a function to
// the host runtime over go-plugin's gRPC transport. The host half is package plugin.
package pluginserve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
	"github.com/fnhost/fnhost/functions/pf/internal/codec"
	"github.com/fnhost/fnhost/functions/pf/plugin"
)

const (
	// DrainTimeout bounds the wait for invocations in flight when the plugin itself is told
	// to stop (SIGTERM), rather than drained by the host.
	DrainTimeout = 30 * time.Second
	// stopGrace bounds the wait for invocations after the gRPC server stopped (they are
	// cancelled by then); go-plugin's host kills the process 2s after asking it to exit.
	stopGrace = time.Second
	// flowWindow is the HTTP/2 flow-control window, per stream and per connection; the host
	// uses the same (plugin.Start).
	flowWindow = 4 << 20
)

// Serve serves h to the host runtime that launched this process, until the host stops it
// (go-plugin's shutdown, from Kill), ctx is cancelled (SIGTERM) or the host dies; then the invocations in
// flight are finished or cancelled and the producers closed. Logs go to stderr as hclog JSON,
// which the host re-levels; stdout belongs to go-plugin's handshake and is never written.
func Serve(ctx context.Context, h call.Handler, stderr io.Writer) error {
	out := &lockedWriter{w: stderr}
	s := New(h, out)
	// Start-up is over once the host has configured the plugin: give back what only it used.
	s.onConfigured = releaseStartup
	// grpcServer hands over the gRPC server go-plugin builds; capacity 1 so that go-plugin
	// never waits for this function to take it.
	grpcServer := make(chan *grpc.Server, 1)
	served := make(chan struct{})
	go func() {
		defer close(served)
		goplugin.Serve(&goplugin.ServeConfig{
			HandshakeConfig: plugin.Handshake,
			Plugins:         plugin.PluginSet(s),
			GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
				// go-plugin's host lifts gRPC's 4 MiB limit on its side; match it.
				opts = append(opts, grpc.MaxRecvMsgSize(math.MaxInt32), grpc.MaxSendMsgSize(math.MaxInt32))
				// A fixed flow-control window, as the host sets on its side: no bandwidth
				// estimation pings and window resizing while the pipeline is busy.
				opts = append(opts, grpc.InitialWindowSize(flowWindow), grpc.InitialConnWindowSize(flowWindow))
				// The pipeline's frames are encoded by hand; the bytes are protobuf's.
				opts = append(opts, grpc.ForceServerCodecV2(codec.Codec{}))
				gs := grpc.NewServer(opts...)
				grpcServer <- gs
				return gs
			},
			Logger: hclog.New(&hclog.LoggerOptions{
				Name:       "go-plugin",
				Output:     out,
				JSONFormat: true,
				Level:      hclog.Info,
			}),
		})
	}()

	stopWatch := make(chan struct{})
	orphaned, waitWatch := watchParent(stopWatch, parentInterval)
	defer waitWatch()
	defer close(stopWatch)

	var errs []error
	select {
	case <-served:
	case <-orphaned:
		// Nobody reads stderr any more, so there is no one to log this to; a log line may
		// even end the process at once (SIGPIPE), which is the point anyway.
		errs = append(errs, s.stop(ctx, grpcServer, served))
	case <-ctx.Done():
		// Stopped by a signal rather than by the host.
		errs = append(errs, s.stop(ctx, grpcServer, served))
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopGrace)
	defer cancel()
	errs = append(errs, s.Close(cctx))
	err := errors.Join(errs...)
	if err == nil {
		_, logger, _ := s.env()
		logger.Info("plugin stopped")
	}
	return err
}

// stop refuses new work, lets what runs finish (bounded by DrainTimeout), then stops the gRPC
// server and waits for go-plugin's Serve to return.
func (s *Server) stop(ctx context.Context, grpcServer <-chan *grpc.Server, served <-chan struct{}) error {
	var err error
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DrainTimeout)
	if derr := s.waitDrained(dctx); derr != nil {
		err = fmt.Errorf("draining on stop: %w", derr)
	}
	cancel()
	select {
	case gs := <-grpcServer:
		gs.Stop()
	case <-served:
	}
	<-served
	return err
}
