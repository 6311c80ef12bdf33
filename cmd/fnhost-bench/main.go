// Command fnhost-bench is make bench: it measures fnhost against baselines measured in the same run
// and prints one table, each figure next to its baseline, the ratio, the target and PASS or
// MISS (DESIGN §7).
//
//  1. Pulsar throughput: a bare pulsar-client-go consume → produce loop against the echo
//     function run as a Pulsar Functions instance (-instance-conf, as the worker launches it)
//     and by the host runtime at parallelism 1 and 2, each draining its own pre-filled topic.
//  2. Plugin invoke, no HTTP and no Pulsar: a bare go-plugin gRPC echo plugin against fnhost's
//     plugin.Start on the echo binary: latency of one caller, throughput of 64 callers.
//  3. Memory: the resident set of every echo plugin process after its load, and of an
//     `fnhost dev` process and its plugins.
//
// Progress goes to stderr, the table to stdout. A missed target is not an error: the exit
// status is 0 and the table says MISS. An operational problem (no Pulsar, a build that fails)
// exits with 1, a bad environment variable with 2. See config.go for the environment.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/fnhost/fnhost/runtime/host"
)

func main() {
	cfg, err := fromEnv(os.Environ())
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	// This process runs the host runtime (and the baselines): tune it as fnhost does.
	host.SetGCPercent(os.Environ())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "bench: interrupted")
		} else {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
		os.Exit(1)
	}
}
