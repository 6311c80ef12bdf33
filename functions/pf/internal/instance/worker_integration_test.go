//go:build integration

package instance

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/admin/config"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/functions/pf/invocation"
	"github.com/fnhost/fnhost/internal/pulsartest"
)

// TestRealWorker deploys functions/echo into the standalone's functions worker with the real
// pulsar-admin, exactly as a user would, and checks that the worker runs it as a Go instance:
// status, data flow with keys and properties, stats, trigger, stop (SIGTERM) and start.
func TestRealWorker(t *testing.T) {
	t.Parallel()
	pulsartest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	bin := filepath.Join(t.TempDir(), "echo")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./functions/echo")
	build.Dir = pulsartest.Root(t)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "building functions/echo: %s", out)

	client := pulsartest.Client(t)
	admin := pulsartest.Admin(t) // topics (v2)
	fnAdmin, err := pulsaradmin.NewClient(&pulsaradmin.Config{WebServiceURL: pulsartest.AdminURL(), PulsarAPIVersion: config.V3})
	require.NoError(t, err)
	in, outTopic := pulsartest.Topic(t), pulsartest.Topic(t)
	name := pulsartest.Name(t)
	fn := []string{"--tenant", "public", "--namespace", "default", "--name", name}
	cli := func(args ...string) string {
		t.Helper()
		out, err := pulsartest.AdminCLI(ctx, t, args...)
		require.NoError(t, err)
		return out
	}

	cli(append([]string{"functions", "create", "--go", bin, "--inputs", in, "--output", outTopic}, fn...)...)
	t.Cleanup(func() { // before the topics are deleted (cleanups run last-first)
		if _, err := pulsartest.AdminCLI(context.Background(), t, append([]string{"functions", "delete"}, fn...)...); err != nil {
			t.Errorf("deleting function %s: %v", name, err)
		}
	})
	waitRunning(ctx, t, fnAdmin, name, 1)
	// Running means the instance answers gRPC, which it does before it subscribes: wait for
	// the subscription (default name tenant/namespace/name) before producing.
	waitSubscription(ctx, t, admin, in, "public/default/"+name)

	outC := subscribeTopic(t, client, outTopic)
	const n = 5
	var msgs []*pulsar.ProducerMessage
	for i := range n {
		msgs = append(msgs, &pulsar.ProducerMessage{Payload: fmt.Appendf(nil, "hello-%d", i), Key: fmt.Sprint("key-", i),
			Properties: map[string]string{"trace": fmt.Sprint(i)}})
	}
	ids := produce(t, client, in, msgs...)
	for i, m := range receiveN(t, outC, n) {
		assert.Equal(t, fmt.Sprintf("hello-%d", i), string(m.Payload()))
		assert.Equal(t, fmt.Sprint("key-", i), m.Key())
		assert.Equal(t, fmt.Sprint(i), m.Properties()["trace"])
		assert.Equal(t, in, m.Properties()[invocation.InputTopic])
		raw, err := base64.StdEncoding.DecodeString(m.Properties()[invocation.InputMessageID])
		require.NoError(t, err)
		id := decodeID(t, raw)
		assert.Equal(t, uint64(ids[i].LedgerID()), id[1])
		assert.Equal(t, uint64(ids[i].EntryID()), id[2])
	}

	// functions stats goes through gRPC GetMetrics.
	var stats struct {
		ReceivedTotal              int64 `json:"receivedTotal"`
		ProcessedSuccessfullyTotal int64 `json:"processedSuccessfullyTotal"`
		UserExceptionsTotal        int64 `json:"userExceptionsTotal"`
		LastInvocation             int64 `json:"lastInvocation"`
		Instances                  []struct {
			InstanceID int `json:"instanceId"`
		} `json:"instances"`
	}
	require.Eventually(t, func() bool {
		require.NoError(t, json.Unmarshal([]byte(cli(append([]string{"functions", "stats"}, fn...)...)), &stats))
		return stats.ProcessedSuccessfullyTotal == n
	}, 60*time.Second, time.Second, "functions stats")
	assert.Equal(t, int64(n), stats.ReceivedTotal)
	assert.Zero(t, stats.UserExceptionsTotal)
	assert.InDelta(t, time.Now().UnixMilli(), stats.LastInvocation, float64(5*time.Minute/time.Millisecond), "milliseconds")
	require.Len(t, stats.Instances, 1)

	// functions trigger matches the output through __pfn_input_msg_id__.
	assert.Equal(t, "triggered", strings.TrimSpace(cli(append([]string{"functions", "trigger", "--trigger-value", "triggered"}, fn...)...)))
	assert.Equal(t, "triggered", string(receiveN(t, outC, 1)[0].Payload()))

	// functions stop: the worker sends SIGTERM; the instance drains and exits cleanly.
	logs := instanceLog(t)
	cli(append([]string{"functions", "stop"}, fn...)...)
	waitRunning(ctx, t, fnAdmin, name, 0)
	if logs != nil {
		require.Eventually(t, func() bool { return logs.contains(name, `"msg":"instance drained; closing"`) },
			30*time.Second, 200*time.Millisecond, "the instance logged its clean stop in %s", logs.path)
		assert.True(t, logs.contains(name, `"reason":"signal"`))
	}

	// functions start: a new process takes over the same subscription.
	cli(append([]string{"functions", "start"}, fn...)...)
	waitRunning(ctx, t, fnAdmin, name, 1)
	waitSubscription(ctx, t, admin, in, "public/default/"+name)
	produce(t, client, in, &pulsar.ProducerMessage{Payload: []byte("after-restart"), Key: "k"})
	got := receiveN(t, outC, 1)
	assert.Equal(t, "after-restart", string(got[0].Payload()))
}

func waitRunning(ctx context.Context, t *testing.T, admin pulsaradmin.Client, name string, want int) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var last string
	for time.Now().Before(deadline) && ctx.Err() == nil {
		st, err := admin.Functions().GetFunctionStatus("public", "default", name)
		if err == nil && st.NumRunning == want && (want == 0 || len(st.Instances) == want && st.Instances[0].Status.Running) {
			return
		}
		last = fmt.Sprintf("%+v %v", st, err)
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond): // polling the worker, not synchronising goroutines
		}
	}
	t.Fatalf("function %s: numRunning never became %d within 90 s; last status: %s", name, want, last)
}

func waitSubscription(ctx context.Context, t *testing.T, admin pulsaradmin.Client, topic, sub string) {
	t.Helper()
	tn, err := utils.GetTopicName(topic)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		if ctx.Err() != nil {
			return false
		}
		st, err := admin.Topics().GetStats(*tn)
		if err != nil {
			return false
		}
		s, ok := st.Subscriptions[sub]
		return ok && len(s.Consumers) > 0
	}, 60*time.Second, 200*time.Millisecond, "subscription %s on %s", sub, topic)
}

// workerLog is the functions worker's stdout.log, where process-runtime instances write.
type workerLog struct {
	path   string
	offset int64
}

// instanceLog finds the log of the standalone scripts/pulsar runs, from its current end; nil
// when the standalone runs elsewhere (FNHOST_TEST_PULSAR_URL).
func instanceLog(t *testing.T) *workerLog {
	t.Helper()
	cache := os.Getenv("PULSAR_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		require.NoError(t, err)
		cache = filepath.Join(home, ".cache", "fnhost", "pulsar")
	}
	matches, err := filepath.Glob(filepath.Join(cache, "*", "run", "logs", "stdout.log"))
	require.NoError(t, err)
	if len(matches) == 0 {
		t.Log("no local worker stdout.log: not checking the instance's shutdown log")
		return nil
	}
	fi, err := os.Stat(matches[len(matches)-1])
	require.NoError(t, err)
	return &workerLog{path: matches[len(matches)-1], offset: fi.Size()}
}

// contains reports whether a line written since instanceLog mentions function name and s.
func (l *workerLog) contains(name, s string) bool {
	f, err := os.Open(l.path)
	if err != nil {
		return false
	}
	defer func() { _ = f.Close() }() // opened for reading: closing it cannot lose data
	if _, err := f.Seek(l.offset, 0); err != nil {
		return false
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, `"function":"public/default/`+name+`"`) && strings.Contains(line, s) {
			return true
		}
	}
	return false
}
