//go:build integration

package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/internal/pulsartest"
)

// startRuntime runs the fnhost binary's runtime command on manifests and returns once it says
// its functions are running.
func startRuntime(ctx context.Context, t *testing.T, bin, manifests, buildDir string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, "runtime", "--manifests", manifests, "--build-dir", buildDir,
		"--admin-addr", "127.0.0.1:0", "--pulsar-url", pulsartest.ServiceURL())
	cmd.Env = append(os.Environ(), "FNHOST_LOG_LEVEL=warn")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr strings.Builder
	cmd.Stderr = &lockedWriter{w: &stderr}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // it may have exited, or been killed by the test
		_ = cmd.Wait()
	})
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "function(s) running") {
			go func() {
				for sc.Scan() {
				}
			}()
			return cmd
		}
	}
	t.Fatalf("fnhost runtime did not start; stderr:\n%s", stderr.String())
	return nil
}

// TestRuntimeKill9AndRestart kills the whole runtime with SIGKILL in the middle of a run and
// starts it again: every input still yields its output (duplicates allowed and counted).
func TestRuntimeKill9AndRestart(t *testing.T) {
	t.Parallel()
	client := pulsartest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	dir := t.TempDir()
	bin := filepath.Join(dir, "fnhost")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	in, outTopic := pulsartest.Topic(t), pulsartest.Topic(t)
	echo, err := filepath.Abs(filepath.Join("..", "..", "functions", "echo"))
	require.NoError(t, err)
	manifests := filepath.Join(dir, "manifests")
	require.NoError(t, os.Mkdir(manifests, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(manifests, "echo.yaml"), []byte(fmt.Sprintf(
		"name: %s\ngo: %s\ninputs: [%s]\noutput: %s\nsubscriptionPosition: Earliest\n", pulsartest.Name(t), echo, in, outTopic)), 0o644))
	buildDir := filepath.Join(dir, "build")

	oc, err := client.Subscribe(pulsar.ConsumerOptions{Topic: outTopic, SubscriptionName: "check",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest, ReceiverQueueSize: 2000})
	require.NoError(t, err)
	defer oc.Close()
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: in})
	require.NoError(t, err)
	defer p.Close()
	send := func(from, to int) {
		for i := from; i < to; i++ {
			p.SendAsync(ctx, &pulsar.ProducerMessage{Payload: []byte("m" + strconv.Itoa(i))}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
				assert.NoError(t, err)
			})
		}
		require.NoError(t, p.FlushWithCtx(ctx))
	}
	seen := map[string]int{}
	total := 0
	receiveUntil := func(done func() bool) {
		for !done() {
			// A minute without an output is a failure that says how far it got.
			rctx, rcancel := context.WithTimeout(ctx, time.Minute)
			m, err := oc.Receive(rctx)
			rcancel()
			require.NoError(t, err, "after %d outputs (%d distinct)", total, len(seen))
			require.NoError(t, oc.Ack(m))
			seen[string(m.Payload())]++
			total++
		}
	}

	const n = 2000
	first := startRuntime(ctx, t, bin, manifests, buildDir)
	send(0, n/2)
	receiveUntil(func() bool { return total >= 100 })
	require.NoError(t, first.Process.Signal(syscall.SIGKILL))
	_ = first.Wait() // killed: the error says so
	send(n/2, n)

	startRuntime(ctx, t, bin, manifests, buildDir)
	receiveUntil(func() bool { return len(seen) == n })
	t.Logf("runtime kill -9 during %d messages: %d outputs, %d duplicates", n, total, total-len(seen))
	for i := range n {
		assert.Contains(t, seen, "m"+strconv.Itoa(i))
	}
}
