// Package plugin is the fnhost plugin protocol shared by a function binary (the plugin) and the
// host runtime: the go-plugin handshake, the plugin map, and the host's side of the protocol
// (Start, Process, Client). The wire protocol is generated in package pluginpb.
//
// The host launches a function binary with Start, which configures it and returns a *Process;
// the runtime then calls Process.Invoke for each input, Health to watch it, Drain before a
// graceful stop, and Kill to end it. The plugin side is served by the SDK (pf.Start).
package plugin

import (
	"context"
	"errors"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/fnhost/fnhost/functions/pf/plugin/pluginpb"
)

// Handshake is the go-plugin handshake between the host runtime and a function binary. A
// function binary that finds the cookie in its environment serves the plugin protocol.
var Handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "FNHOST_PLUGIN",
	MagicCookieValue: "fnhost-function-v1",
}

// Name is the name the function is dispensed under in the plugin map.
const Name = "function"

// GRPCPlugin is the go-plugin plugin of a function. In the plugin process Impl is the
// implementation being served; in the host it is nil and the plugin dispenses a *Client.
type GRPCPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	// Impl serves the protocol; set in the plugin process only.
	Impl pluginpb.FunctionServer
}

var _ goplugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer implements goplugin.GRPCPlugin: it registers p.Impl.
func (p *GRPCPlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return errors.New("plugin: GRPCPlugin.Impl is nil")
	}
	pluginpb.RegisterFunctionServer(s, p.Impl)
	return nil
}

// GRPCClient implements goplugin.GRPCPlugin: it returns a *Client over conn, not yet
// configured. go-plugin cancels ctx when the plugin process exits; the Client then fails what
// is in flight with ErrExited. The Client does not close conn: go-plugin owns it.
func (p *GRPCPlugin) GRPCClient(ctx context.Context, _ *goplugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return newClient(ctx, pluginpb.NewFunctionClient(conn)), nil
}

// PluginSet returns the plugin map: served by srv in the plugin process, srv nil in the host.
func PluginSet(srv pluginpb.FunctionServer) goplugin.PluginSet {
	return goplugin.PluginSet{Name: &GRPCPlugin{Impl: srv}}
}
