// Command bareecho is make bench's baseline plugin: a bare go-plugin gRPC echo server (see
// package bareplugin). It is started by the benchmark, never by hand.
package main

import "github.com/fnhost/fnhost/cmd/fnhost-bench/bareplugin"

func main() { bareplugin.Serve() }
