// Package plugin is the fnhost plugin protocol shared by a function binary (the plugin) and the
// host runtime: the go-plugin handshake, the plugin map and the gRPC client the host uses.
package plugin

import goplugin "github.com/hashicorp/go-plugin"

// Handshake is the go-plugin handshake between the host runtime and a function binary. A
// function binary that finds the cookie in its environment serves the plugin protocol.
var Handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "FNHOST_PLUGIN",
	MagicCookieValue: "fnhost-function-v1",
}
