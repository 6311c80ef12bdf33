//go:build integration

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/internal/pulsartest"
)

// deployScript runs scripts/deploy for example fn under name with its own topics, and returns
// its combined output.
func deployScript(ctx context.Context, t *testing.T, fn string, d deployed, extra ...string) string {
	t.Helper()
	args := append([]string{fn, "--", "--name", d.name, "--inputs", d.in, "--output", d.out}, extra...)
	cmd := exec.CommandContext(ctx, filepath.Join(pulsartest.Root(t), "scripts", "deploy"), args...)
	cmd.Env = append(os.Environ(), "PULSAR_ADMIN_URL="+pulsartest.AdminURL())
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "scripts/deploy %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

func trigger(ctx context.Context, t *testing.T, d deployed, value string) string {
	t.Helper()
	out, err := pulsartest.AdminCLI(ctx, t, "functions", "trigger", "--tenant", "public", "--namespace", "default",
		"--name", d.name, "--topic", d.in, "--trigger-value", value)
	require.NoError(t, err)
	return strings.TrimSpace(out)
}

// TestLifecycle deploys with scripts/deploy, updates to a new binary (which takes effect),
// stops, starts and deletes the function with the real pulsar-admin.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	d := deployed{name: pulsartest.Name(t)}
	d.in, d.out = "persistent://public/default/"+d.name+"-in", "persistent://public/default/"+d.name+"-out"
	admin := pulsartest.FunctionsAdmin(t)
	deleted := false
	t.Cleanup(func() {
		if !deleted {
			_ = admin.Functions().DeleteFunction("public", "default", d.name) // best effort after a failure
		}
	})
	id := []string{"--tenant", "public", "--namespace", "default", "--name", d.name}

	out := deployScript(ctx, t, "echo", d)
	assert.Contains(t, out, "create "+d.name)
	assert.Equal(t, "hello", trigger(ctx, t, d, "hello"))

	out = deployScript(ctx, t, "upper", d)
	assert.Contains(t, out, "update "+d.name)
	require.Eventually(t, func() bool { return trigger(ctx, t, d, "hello") == "HELLO" }, 2*time.Minute, time.Second,
		"the updated binary takes effect")

	_, err := pulsartest.AdminCLI(ctx, t, append([]string{"functions", "stop"}, id...)...)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		st, err := admin.Functions().GetFunctionStatus("public", "default", d.name)
		return err == nil && st.NumRunning == 0
	}, 2*time.Minute, 500*time.Millisecond, "stopped")

	_, err = pulsartest.AdminCLI(ctx, t, append([]string{"functions", "start"}, id...)...)
	require.NoError(t, err)
	waitRunning(t, admin, d.name, 1)
	assert.Equal(t, "AGAIN", trigger(ctx, t, d, "again"))

	_, err = pulsartest.AdminCLI(ctx, t, append([]string{"functions", "delete"}, id...)...)
	require.NoError(t, err)
	deleted = true
	_, err = pulsartest.AdminCLI(ctx, t, append([]string{"functions", "get"}, id...)...)
	assert.Error(t, err, "deleted")
}

// TestFlakyInWorker: in the real worker, failing inputs of flaky are retried and land on the
// dead-letter topic after the configured retries, while the other inputs flow.
func TestFlakyInWorker(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	client := pulsartest.Client(t)
	d := deployed{name: pulsartest.Name(t)}
	d.in, d.out = "persistent://public/default/"+d.name+"-in", "persistent://public/default/"+d.name+"-out"
	dlq := pulsartest.Topic(t)
	admin := pulsartest.FunctionsAdmin(t)
	t.Cleanup(func() {
		if err := admin.Functions().DeleteFunction("public", "default", d.name); err != nil {
			t.Errorf("deleting %s: %v", d.name, err)
		}
	})
	// The dead-letter topic keeps messages only for existing subscriptions: subscribe first.
	dc := subscribe(t, client, dlq)
	oc := subscribe(t, client, d.out)
	deployScript(ctx, t, "flaky", d, "--user-config",
		fmt.Sprintf(`{"marker":"fail","fnhost.maxMessageRetries":2,"fnhost.deadLetterTopic":%q,"fnhost.retryBackoff":"100ms"}`, dlq))

	var ins []input
	for i := range 3 {
		ins = append(ins, input{payload: fmt.Sprintf("fail-%d", i)})
	}
	for i := range 20 {
		ins = append(ins, input{payload: fmt.Sprintf("ok-%d", i)})
	}
	produce(ctx, t, client, d.in, ins...)
	outs := receive(ctx, t, oc, 20)
	for _, m := range outs {
		assert.True(t, strings.HasPrefix(string(m.Payload()), "ok-"))
	}
	// Each failing input reaches the dead-letter topic; at-least-once allows a copy more (a
	// dead-letter send whose ack was lost), so wait for the three distinct payloads.
	dead := map[string]int{}
	for len(dead) < 3 {
		m := receive(ctx, t, dc, 1)[0]
		require.True(t, strings.HasPrefix(string(m.Payload()), "fail-"), "dead letter %q", m.Payload())
		dead[string(m.Payload())]++
	}
	// Three failing inputs, each delivered once and retried twice: nine user exceptions.
	// Pulsar may deliver an input once more than that (its consumer reconnected while the input
	// was in flight), so more is at-least-once and is logged; fewer means a retry was skipped,
	// unless the worker restarted the instance, which starts its counts again.
	var st utils.FunctionStatus
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		var err error
		st, err = admin.Functions().GetFunctionStatus("public", "default", d.name)
		if !assert.NoError(c, err) || !assert.Len(c, st.Instances, 1) {
			return
		}
		s := st.Instances[0].Status
		if s.NumRestarts > 0 {
			return // the worker restarted the instance, and its counts began again
		}
		assert.GreaterOrEqual(c, s.NumUserExceptions, int64(9),
			"each failing input runs 1 + 2 retries times (instance: %d received, %d processed, %d restarts, error %q)",
			s.NumReceived, s.NumSuccessfullyProcessed, s.NumRestarts, s.Err)
	}, time.Minute, 500*time.Millisecond)
	if s := st.Instances[0].Status; s.NumUserExceptions > 9 || s.NumRestarts > 0 {
		t.Logf("%d user exceptions, %d instance restarts: at-least-once ran an input more than 1 + 2 times", s.NumUserExceptions, s.NumRestarts)
	}
}
