//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/functions/pf/invocation"
	"github.com/fnhost/fnhost/internal/pulsartest"
)

var (
	buildMu sync.Mutex
	built   = map[string]string{}
	binDir  string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fnhost-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintln(os.Stderr, "removing the test binaries:", err)
	}
	os.Exit(code)
}

// binary builds functions/<fn> as a static Linux binary once per test run.
func binary(t *testing.T, fn string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[fn]; ok {
		return p
	}
	out := filepath.Join(binDir, fn)
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./functions/"+fn)
	cmd.Dir = pulsartest.Root(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", fn, err, b)
	}
	built[fn] = out
	return out
}

// deployed is a function deployed for one test, with its own topics.
type deployed struct {
	name, in, out string
}

// deploy creates function fn from its manifest with the real pulsar-admin, under a unique name
// and unique topics, waits until its instance runs, and deletes it when the test ends.
func deploy(ctx context.Context, t *testing.T, fn string, extra ...string) deployed {
	t.Helper()
	d := deployed{name: pulsartest.Name(t)}
	d.in = "persistent://public/default/" + d.name + "-in"
	d.out = "persistent://public/default/" + d.name + "-out"
	args := append([]string{
		"functions", "create",
		"--function-config-file", filepath.Join(pulsartest.Root(t), "manifests", "functions", fn+".yaml"),
		"--go", binary(t, fn),
		"--name", d.name, "--inputs", d.in, "--output", d.out,
	}, extra...)
	_, err := pulsartest.AdminCLI(ctx, t, args...)
	require.NoError(t, err)
	admin := pulsartest.FunctionsAdmin(t)
	t.Cleanup(func() {
		if err := admin.Functions().DeleteFunction("public", "default", d.name); err != nil {
			t.Errorf("deleting function %s: %v", d.name, err)
		}
	})
	waitRunning(t, admin, d.name, 1)
	return d
}

func waitRunning(t *testing.T, admin pulsaradmin.Client, name string, n int) {
	t.Helper()
	var last string
	ok := assert.Eventually(t, func() bool {
		st, err := admin.Functions().GetFunctionStatus("public", "default", name)
		if err != nil {
			last = err.Error()
			return false
		}
		b, _ := json.Marshal(st)
		last = string(b)
		return st.NumRunning >= n
	}, 2*time.Minute, 500*time.Millisecond)
	if !ok {
		t.Fatalf("function %s: not %d instance(s) running; last status: %s (instance output: scripts/pulsar logs, run/logs/stdout.log)", name, n, last)
	}
}

type input struct {
	payload string
	key     string
	props   map[string]string
}

func produce(ctx context.Context, t *testing.T, client pulsar.Client, topic string, ins ...input) {
	t.Helper()
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	require.NoError(t, err)
	defer p.Close()
	for _, in := range ins {
		_, err := p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte(in.payload), Key: in.key, Properties: in.props})
		require.NoError(t, err)
	}
}

func subscribe(t *testing.T, client pulsar.Client, topic string) pulsar.Consumer {
	t.Helper()
	c, err := client.Subscribe(pulsar.ConsumerOptions{
		Topic: topic, SubscriptionName: "e2e",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
	})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func receive(ctx context.Context, t *testing.T, c pulsar.Consumer, n int) []pulsar.Message {
	t.Helper()
	msgs := make([]pulsar.Message, 0, n)
	for range n {
		m, err := c.Receive(ctx)
		require.NoError(t, err, "received %d of %d outputs", len(msgs), n)
		require.NoError(t, c.Ack(m))
		msgs = append(msgs, m)
	}
	return msgs
}

// TestExamplesInPulsarFunctions deploys every example into the real functions worker and checks
// that each input yields the right outputs, with the input's key and properties, the
// __pfn_input_* properties, and counts served by the instance's gRPC server.
func TestExamplesInPulsarFunctions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fn    string
		in    input
		want  []string
		check func(t *testing.T, d deployed, out pulsar.Message)
	}{
		{fn: "echo", in: input{payload: "hello", key: "k1", props: map[string]string{"trace": "t1"}}, want: []string{"hello"}},
		{fn: "upper", in: input{payload: "hello", key: "k2"}, want: []string{"HELLO"}},
		{fn: "wordcount", in: input{payload: "a bb bb ccc"}, want: []string{`{"words":3,"counts":{"bb":2,"ccc":1}}`}},
		{fn: "stream", in: input{payload: "3", key: "s"}, want: []string{"chunk 1/3", "chunk 2/3", "chunk 3/3"}},
		{
			fn: "enrich", in: input{payload: `{"order":7}`, key: "customer-9"},
			check: func(t *testing.T, d deployed, out pulsar.Message) {
				assert.JSONEq(t, fmt.Sprintf(`{"order":7,"_meta":{"key":"customer-9","topic":%q,"source":"fnhost-example"}}`, d.in), string(out.Payload()))
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.fn, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			client := pulsartest.Client(t)
			d := deploy(ctx, t, tc.fn)
			outs := subscribe(t, client, d.out)
			produce(ctx, t, client, d.in, tc.in)

			n := len(tc.want)
			if n == 0 {
				n = 1
			}
			got := receive(ctx, t, outs, n)
			for i, m := range got {
				if tc.want != nil {
					assert.Equal(t, tc.want[i], string(m.Payload()), "output %d", i)
				}
				if tc.check != nil {
					tc.check(t, d, m)
				}
				assert.Equal(t, tc.in.key, m.Key(), "the output keeps the input's key")
				for k, v := range tc.in.props {
					assert.Equal(t, v, m.Properties()[k], "input property %s is forwarded", k)
				}
				assert.Equal(t, d.in, m.Properties()[invocation.InputTopic])
				assert.NotEmpty(t, m.Properties()[invocation.InputMessageID])
			}

			admin := pulsartest.FunctionsAdmin(t)
			var stats string
			ok := assert.Eventually(t, func() bool {
				st, err := admin.Functions().GetFunctionStats("public", "default", d.name)
				if err != nil {
					return false
				}
				b, _ := json.Marshal(st)
				stats = string(b)
				return st.ReceivedTotal == 1 && st.ProcessedSuccessfullyTotal == 1
			}, time.Minute, 500*time.Millisecond, "functions stats must count the one input")
			if !ok {
				t.Logf("last stats: %s", stats)
			}
			status, err := admin.Functions().GetFunctionStatus("public", "default", d.name)
			require.NoError(t, err)
			require.Len(t, status.Instances, 1)
			assert.EqualValues(t, 1, status.Instances[0].Status.NumReceived)
			assert.EqualValues(t, 1, status.Instances[0].Status.NumSuccessfullyProcessed)
		})
	}
}

// TestTrigger proves `pulsar-admin functions trigger` finds a Go function's output, which it
// never does with the upstream Go runtime (no __pfn_input_* properties there).
func TestTrigger(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	d := deploy(ctx, t, "upper")
	out, err := pulsartest.AdminCLI(ctx, t, "functions", "trigger",
		"--tenant", "public", "--namespace", "default", "--name", d.name,
		"--topic", d.in, "--trigger-value", "triggered")
	require.NoError(t, err)
	assert.Equal(t, "TRIGGERED", strings.TrimSpace(out))
}
