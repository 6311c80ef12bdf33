//go:build integration

package instance

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
	pb "github.com/fnhost/fnhost/functions/pf/internal/pfproto"
	"github.com/fnhost/fnhost/functions/pf/invocation"
	"github.com/fnhost/fnhost/internal/pulsartest"
)

// freePort returns a port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}

// testInstance is an instance running in this process.
type testInstance struct {
	port, metricsPort int
	cancel            context.CancelFunc
	done              chan error
}

// startInstance runs Run with a worker-style configuration whose functionDetails is details,
// and stops it when the test ends.
func startInstance(t *testing.T, name, details string, h call.Handler) *testInstance {
	t.Helper()
	pulsartest.Require(t)
	ti := &testInstance{port: freePort(t), metricsPort: freePort(t), done: make(chan error, 1)}
	conf, err := json.Marshal(map[string]any{
		"pulsarServiceURL": pulsartest.ServiceURL(),
		"instanceID":       0, "funcID": "test", "funcVersion": "test", "clusterName": "standalone",
		"port": ti.port, "metricsPort": ti.metricsPort,
		"tenant": "public", "nameSpace": "default", "name": name,
		"functionDetails":  details,
		"workerAddedLater": "ignored",
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	ti.cancel = cancel
	go func() { ti.done <- Run(ctx, Args{ConfJSON: string(conf)}, h, testLog{t}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-ti.done:
			assert.NoError(t, err, "Run after cancel")
		case <-time.After(20 * time.Second):
			t.Error("Run did not return within 20 s of cancel")
		}
	})
	return ti
}

// stop cancels the instance and requires Run to return nil within the shutdown bound.
func (ti *testInstance) stop(t *testing.T) {
	t.Helper()
	ti.cancel()
	select {
	case err := <-ti.done:
		require.NoError(t, err)
		ti.done <- nil // for the cleanup
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15 s of cancel")
	}
}

func (ti *testInstance) status(t *testing.T) *pb.FunctionStatus {
	t.Helper()
	conn, err := grpc.NewClient("127.0.0.1:"+strconv.Itoa(ti.port), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer func() { assert.NoError(t, conn.Close()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var st pb.FunctionStatus
	require.NoError(t, conn.Invoke(ctx, "/proto.InstanceControl/GetFunctionStatus", &emptypb.Empty{}, &st))
	return &st
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// detailsJSON is a functionDetails document as the worker writes it.
func detailsJSON(t *testing.T, name string, inputs []string, output, logTopic string, userConfig map[string]any) string {
	t.Helper()
	specs := map[string]any{}
	for _, in := range inputs {
		specs[in] = map[string]any{}
	}
	uc, err := json.Marshal(userConfig)
	require.NoError(t, err)
	b, err := json.Marshal(map[string]any{
		"tenant": "public", "namespace": "default", "name": name, "runtime": "GO", "autoAck": true,
		"logTopic": logTopic, "userConfig": string(uc),
		"source": map[string]any{"inputSpecs": specs, "subscriptionPosition": "EARLIEST", "cleanupSubscription": true},
		"sink":   map[string]any{"topic": output, "forwardSourceMessageProperty": true},
	})
	require.NoError(t, err)
	return string(b)
}

func subscribeTopic(t *testing.T, client pulsar.Client, topic string) pulsar.Consumer {
	t.Helper()
	c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "test",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func produce(t *testing.T, client pulsar.Client, topic string, msgs ...*pulsar.ProducerMessage) []pulsar.MessageID {
	t.Helper()
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	require.NoError(t, err)
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ids []pulsar.MessageID
	for _, m := range msgs {
		id, err := p.Send(ctx, m)
		require.NoError(t, err)
		ids = append(ids, id)
	}
	return ids
}

func receiveN(t *testing.T, c pulsar.Consumer, n int) []pulsar.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []pulsar.Message
	for range n {
		m, err := c.Receive(ctx)
		require.NoError(t, err, "received %d of %d", len(out), n)
		require.NoError(t, c.Ack(m))
		out = append(out, m)
	}
	return out
}

func upper(_ context.Context, _ call.Env, inv *call.Invocation) ([]byte, error) {
	return []byte(strings.ToUpper(string(inv.Message.Payload()))), nil
}

func TestInstanceEndToEnd(t *testing.T) {
	t.Parallel()
	client := pulsartest.Client(t)
	in, out := pulsartest.Topic(t), pulsartest.Topic(t)
	name := pulsartest.Name(t)
	outC := subscribeTopic(t, client, out)
	ti := startInstance(t, name, detailsJSON(t, name, []string{in}, out, "", nil), upper)

	const n = 10
	var msgs []*pulsar.ProducerMessage
	for i := range n {
		msgs = append(msgs, &pulsar.ProducerMessage{Payload: fmt.Appendf(nil, "msg-%d", i), Key: fmt.Sprint("k", i%3),
			Properties: map[string]string{"i": fmt.Sprint(i), invocation.InputTopic: "spoofed"},
			EventTime:  time.UnixMilli(1_700_000_000_000 + int64(i))})
	}
	ids := produce(t, client, in, msgs...)
	got := receiveN(t, outC, n)
	for i, m := range got {
		assert.Equal(t, fmt.Sprintf("MSG-%d", i), string(m.Payload()))
		assert.Equal(t, fmt.Sprint("k", i%3), m.Key())
		assert.Equal(t, fmt.Sprint(i), m.Properties()["i"], "forwarded property")
		assert.Equal(t, in, m.Properties()[invocation.InputTopic])
		assert.Equal(t, time.UnixMilli(1_700_000_000_000+int64(i)), m.EventTime())
		raw, err := base64.StdEncoding.DecodeString(m.Properties()[invocation.InputMessageID])
		require.NoError(t, err)
		id := decodeID(t, raw)
		assert.Equal(t, uint64(ids[i].LedgerID()), id[1])
		assert.Equal(t, uint64(ids[i].EntryID()), id[2])
	}

	require.Eventually(t, func() bool {
		st := ti.status(t)
		return st.NumReceived == n && st.NumSuccessfullyProcessed == n
	}, 10*time.Second, 50*time.Millisecond, "status counts")
	st := ti.status(t)
	assert.Zero(t, st.NumUserExceptions)
	assert.Zero(t, st.NumSystemExceptions)
	assert.Positive(t, st.LastInvocationTime)

	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(ti.metricsPort) + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close() // a response body: closing it only releases the connection
	require.NoError(t, err)
	assert.Contains(t, string(body), `pulsar_function_received_total{cluster="standalone",fqfn="public/default/`+name+`",instance_id="0",name="`+name+`",namespace="public/default",tenant="public"} 10`)

	ti.stop(t)
}

func TestInstanceDeadLetter(t *testing.T) {
	t.Parallel()
	client := pulsartest.Client(t)
	in, out, dlq := pulsartest.Topic(t), pulsartest.Topic(t), pulsartest.Topic(t)
	name := pulsartest.Name(t)
	outC := subscribeTopic(t, client, out)
	dlqC := subscribeTopic(t, client, dlq)
	var badCalls atomic.Int32
	h := func(_ context.Context, _ call.Env, inv *call.Invocation) ([]byte, error) {
		if strings.HasPrefix(string(inv.Message.Payload()), "bad") {
			badCalls.Add(1)
			return nil, errors.New("bad input")
		}
		return inv.Message.Payload(), nil
	}
	startInstance(t, name, detailsJSON(t, name, []string{in}, out, "", map[string]any{
		KeyMaxMessageRetries: 2, KeyDeadLetterTopic: dlq, KeyRetryBackoff: "100ms",
	}), h)
	produce(t, client, in,
		&pulsar.ProducerMessage{Payload: []byte("good-1")},
		&pulsar.ProducerMessage{Payload: []byte("bad-1"), Key: "kb"},
		&pulsar.ProducerMessage{Payload: []byte("good-2")})

	var good []string
	for _, m := range receiveN(t, outC, 2) {
		good = append(good, string(m.Payload()))
	}
	assert.ElementsMatch(t, []string{"good-1", "good-2"}, good)
	dead := receiveN(t, dlqC, 1)
	assert.Equal(t, "bad-1", string(dead[0].Payload()))
	assert.Equal(t, "kb", dead[0].Key())
	assert.Equal(t, int32(3), badCalls.Load(), "one delivery and two retries")
}

func TestInstanceReplyTo(t *testing.T) {
	t.Parallel()
	client := pulsartest.Client(t)
	in, out, reply := pulsartest.Topic(t), pulsartest.Topic(t), pulsartest.Topic(t)
	name := pulsartest.Name(t)
	replyC := subscribeTopic(t, client, reply)
	var lateCalled atomic.Bool
	h := func(ctx context.Context, _ call.Env, inv *call.Invocation) ([]byte, error) {
		switch p := string(inv.Message.Payload()); p {
		case "late":
			lateCalled.Store(true)
			return nil, nil
		case "stream":
			for i := range 2 {
				if err := inv.Emit(ctx, call.Output{Payload: fmt.Appendf(nil, "part-%d", i)}); err != nil {
					return nil, err
				}
			}
			return nil, nil
		case "fail":
			return nil, errors.New("it failed")
		default:
			return []byte("one:" + p), nil
		}
	}
	startInstance(t, name, detailsJSON(t, name, []string{in}, out, "", nil), h)
	req := func(id, payload string, extra ...string) *pulsar.ProducerMessage {
		props := map[string]string{invocation.ID: id, invocation.ReplyTo: reply}
		for i := 0; i+1 < len(extra); i += 2 {
			props[extra[i]] = extra[i+1]
		}
		return &pulsar.ProducerMessage{Payload: []byte(payload), Properties: props}
	}
	past := strconv.FormatInt(time.Now().Add(-time.Minute).UnixMilli(), 10)
	produce(t, client, in, req("a", "stream"), req("b", "single"), req("c", "fail"), req("d", "late", invocation.Deadline, past))

	type rep struct{ payload, seq, final, err string }
	byID := map[string][]rep{}
	for _, m := range receiveN(t, replyC, 3+1+1+1) {
		p := m.Properties()
		byID[p[invocation.ID]] = append(byID[p[invocation.ID]], rep{string(m.Payload()), p[invocation.Seq], p[invocation.Final], p[invocation.Error]})
	}
	assert.Equal(t, map[string][]rep{
		"a": {{"part-0", "0", "", ""}, {"part-1", "1", "", ""}, {"", "2", "true", ""}},
		"b": {{"one:single", "0", "true", ""}},
		"c": {{"", "0", "true", "it failed"}},
		"d": {{"", "0", "true", call.ErrDeadline.Error()}},
	}, byID)
	assert.False(t, lateCalled.Load(), "an input past its deadline is not processed")
}

func TestInstanceLogTopic(t *testing.T) {
	t.Parallel()
	client := pulsartest.Client(t)
	in, logs := pulsartest.Topic(t), pulsartest.Topic(t)
	name := pulsartest.Name(t)
	logC := subscribeTopic(t, client, logs)
	h := func(_ context.Context, env call.Env, inv *call.Invocation) ([]byte, error) {
		env.Logger().Warn("hello from the function", "payload", string(inv.Message.Payload()))
		return nil, nil
	}
	startInstance(t, name, detailsJSON(t, name, []string{in}, "", logs, nil), h)
	produce(t, client, in, &pulsar.ProducerMessage{Payload: []byte("x")})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		m, err := logC.Receive(ctx)
		require.NoError(t, err, "the function's log record never reached the log topic")
		require.NoError(t, logC.Ack(m))
		var rec map[string]any
		require.NoError(t, json.Unmarshal(m.Payload(), &rec), "log records are JSON: %s", m.Payload())
		if rec["msg"] != "hello from the function" {
			continue // the instance's own records
		}
		assert.Equal(t, "x", rec["payload"])
		assert.Equal(t, map[string]string{"loglevel": "WARN", "instance": "0", "fqn": "public/default/" + name}, m.Properties())
		return
	}
}

func TestInstanceManualAckAndRegex(t *testing.T) {
	t.Parallel()
	client := pulsartest.Client(t)
	base := pulsartest.Topic(t)
	in1, in2 := base+"-a", base+"-b"
	out := pulsartest.Topic(t)
	for _, tp := range []string{in1, in2} {
		cleanupTopic(t, tp)
	}
	name := pulsartest.Name(t)
	outC := subscribeTopic(t, client, out)
	var mu sync.Mutex
	acked := map[string]bool{}
	h := func(_ context.Context, _ call.Env, inv *call.Invocation) ([]byte, error) {
		if err := inv.Ack(); err != nil {
			return nil, err
		}
		mu.Lock()
		acked[string(inv.Message.Payload())] = true
		mu.Unlock()
		return inv.Message.Payload(), nil
	}
	d := fmt.Sprintf(`{"tenant":"public","namespace":"default","name":%q,"processingGuarantees":"MANUAL",`+
		`"source":{"inputSpecs":{%q:{"isRegexPattern":true}},"subscriptionPosition":"EARLIEST"},"sink":{"topic":%q}}`,
		name, base+"-.*", out)
	// Create the topics first so the pattern consumer finds them at start.
	produce(t, client, in1, &pulsar.ProducerMessage{Payload: []byte("from-a")})
	produce(t, client, in2, &pulsar.ProducerMessage{Payload: []byte("from-b")})
	ti := startInstance(t, name, d, h)
	var got []string
	for _, m := range receiveN(t, outC, 2) {
		got = append(got, string(m.Payload()))
	}
	assert.ElementsMatch(t, []string{"from-a", "from-b"}, got)
	mu.Lock()
	assert.Equal(t, map[string]bool{"from-a": true, "from-b": true}, acked)
	mu.Unlock()
	require.Eventually(t, func() bool { return ti.status(t).NumSuccessfullyProcessed == 2 }, 10*time.Second, 50*time.Millisecond)
	assert.Zero(t, ti.status(t).NumUserExceptions, "ack through the pattern consumer works")
}

// cleanupTopic deletes a topic the test made without pulsartest.Topic.
func cleanupTopic(t *testing.T, topic string) {
	t.Helper()
	admin := pulsartest.Admin(t)
	t.Cleanup(func() {
		tn, err := utils.GetTopicName(topic)
		if err != nil {
			t.Errorf("parsing %s: %v", topic, err)
			return
		}
		if err := admin.Topics().Delete(*tn, true, true); err != nil && !strings.Contains(err.Error(), "404") {
			t.Logf("deleting %s: %v", topic, err)
		}
	})
}

// decodeID reads MessageIdData fields 1-6 back.
func decodeID(t *testing.T, b []byte) map[protowire.Number]uint64 {
	t.Helper()
	out := map[protowire.Number]uint64{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		require.GreaterOrEqual(t, n, 0)
		require.Equal(t, protowire.VarintType, typ)
		b = b[n:]
		v, n := protowire.ConsumeVarint(b)
		require.GreaterOrEqual(t, n, 0)
		b = b[n:]
		out[num] = v
	}
	return out
}
