// Package bareplugin is the benchmark's baseline plugin protocol: a go-plugin gRPC plugin with
// nothing but an echo service, so that make bench can tell what fnhost's plugin protocol costs
// over go-plugin itself.
//
// The service is declared by hand (a grpc.ServiceDesc whose messages are
// wrapperspb.BytesValue) to need no code generation: a unary Echo and a bidirectional stream
// EchoStream that answers each message with the same bytes, in order.
package bareplugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Handshake is the go-plugin handshake of the baseline plugin; it differs from fnhost's, so
// neither binary can be mistaken for the other.
var Handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "FNHOST_BENCH_BARE_PLUGIN",
	MagicCookieValue: "bare-echo-v1",
}

// name is the plugin's name in the plugin map.
const name = "echo"

const (
	serviceName = "fnhost.bench.Echo"
	unaryMethod = "/" + serviceName + "/Echo"
	streamName  = "EchoStream"
	streamPath  = "/" + serviceName + "/" + streamName
)

// echoServer is the HandlerType of the service: the handlers below need no methods.
type echoServer interface{}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: serviceName,
	HandlerType: (*echoServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(_ any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.BytesValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			echo := func(_ context.Context, req any) (any, error) { return req, nil }
			if interceptor == nil {
				return echo(ctx, in)
			}
			return interceptor(ctx, in, &grpc.UnaryServerInfo{FullMethod: unaryMethod}, echo)
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    streamName,
		ServerStreams: true,
		ClientStreams: true,
		Handler: func(_ any, stream grpc.ServerStream) error {
			msg := new(wrapperspb.BytesValue)
			for {
				if err := stream.RecvMsg(msg); err != nil {
					if errors.Is(err, io.EOF) {
						return nil
					}
					return err
				}
				if err := stream.SendMsg(msg); err != nil {
					return err
				}
			}
		},
	}},
}

// grpcPlugin is the go-plugin glue for both sides.
type grpcPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
}

var _ goplugin.GRPCPlugin = grpcPlugin{}

// GRPCServer implements goplugin.GRPCPlugin.
func (grpcPlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	s.RegisterService(&serviceDesc, nil)
	return nil
}

// GRPCClient implements goplugin.GRPCPlugin.
func (grpcPlugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return &Client{conn: conn}, nil
}

// Serve serves the echo plugin on the go-plugin handshake and does not return; it is the
// whole main of the plugin binary.
func Serve() {
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         goplugin.PluginSet{name: grpcPlugin{}},
		GRPCServer:      goplugin.DefaultGRPCServer,
	})
}

// Client calls the echo plugin over its gRPC connection. It is safe for concurrent use.
type Client struct {
	conn *grpc.ClientConn
}

// Echo makes one unary call and returns the echoed bytes.
func (c *Client) Echo(ctx context.Context, b []byte) ([]byte, error) {
	out := new(wrapperspb.BytesValue)
	if err := c.conn.Invoke(ctx, unaryMethod, wrapperspb.Bytes(b), out); err != nil {
		return nil, fmt.Errorf("echo: %w", err)
	}
	return out.GetValue(), nil
}

// Stream is one bidirectional echo stream. Send and Recv may run concurrently with each other
// (one goroutine each), as gRPC allows; neither may be called from two goroutines at once.
type Stream struct {
	s grpc.ClientStream
}

// Stream opens an echo stream that lives until ctx ends or CloseSend drains it.
func (c *Client) Stream(ctx context.Context) (*Stream, error) {
	s, err := c.conn.NewStream(ctx, &serviceDesc.Streams[0], streamPath)
	if err != nil {
		return nil, fmt.Errorf("opening echo stream: %w", err)
	}
	return &Stream{s: s}, nil
}

// Send sends one message; it blocks while gRPC flow control holds it back.
func (s *Stream) Send(b []byte) error { return s.s.SendMsg(wrapperspb.Bytes(b)) }

// Recv receives the next echoed message into m; it returns io.EOF after CloseSend once every
// answer is in.
func (s *Stream) Recv(m *wrapperspb.BytesValue) error { return s.s.RecvMsg(m) }

// CloseSend tells the plugin no more messages come.
func (s *Stream) CloseSend() error { return s.s.CloseSend() }

// Process is a running baseline plugin process. Kill it when done.
type Process struct {
	*Client
	gp  *goplugin.Client
	cmd *exec.Cmd
}

// Start launches the plugin binary at path (gRPC only, not managed by go-plugin's global
// cleanup) and dispenses its client. logger receives go-plugin's logs; nil discards them.
func Start(path string, logger hclog.Logger) (*Process, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	cmd := exec.Command(path)
	gp := goplugin.NewClient(&goplugin.ClientConfig{
		Logger:           logger,
		HandshakeConfig:  Handshake,
		Plugins:          goplugin.PluginSet{name: grpcPlugin{}},
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Managed:          false,
	})
	rpc, err := gp.Client()
	if err != nil {
		gp.Kill()
		return nil, fmt.Errorf("starting %s: %w", path, err)
	}
	raw, err := rpc.Dispense(name)
	if err != nil {
		gp.Kill()
		return nil, fmt.Errorf("dispensing %s: %w", path, err)
	}
	c, ok := raw.(*Client)
	if !ok {
		gp.Kill()
		return nil, fmt.Errorf("dispensing %s: got %T", path, raw)
	}
	return &Process{Client: c, gp: gp, cmd: cmd}, nil
}

// Pid returns the plugin's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Kill stops the plugin and waits for it; it is idempotent (go-plugin's Kill is).
func (p *Process) Kill() { p.gp.Kill() }
