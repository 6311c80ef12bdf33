//go:build integration

package pulsarinvoke_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/fnhost/fnhost/functions/pf/invocation"
	"github.com/fnhost/fnhost/internal/manifest"
	"github.com/fnhost/fnhost/internal/pulsartest"
	"github.com/fnhost/fnhost/trigger"
	"github.com/fnhost/fnhost/trigger/pulsarinvoke"
)

// newTrigger serves a trigger over a Pulsar invoker with cfg until the test ends.
func newTrigger(t *testing.T, cfg pulsarinvoke.Config) (*httptest.Server, *pulsarinvoke.Invoker) {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg.Client, cfg.Logger = pulsartest.Client(t), pulsartest.Logger(t)
	inv, err := pulsarinvoke.New(ctx, cfg)
	require.NoError(t, err)
	srv, err := trigger.New(trigger.Config{Invoker: inv, Publisher: inv, Logger: pulsartest.Logger(t)})
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, inv.Close(ctx))
	})
	return ts, inv
}

func post(t *testing.T, url, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// javaMessageID encodes id as Java's MessageId.toByteArray does on a non-partitioned topic.
func javaMessageID(id pulsar.MessageID) string {
	b := protowire.AppendTag(nil, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(id.LedgerID()))
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(id.EntryID()))
	if id.BatchSize() > 1 {
		b = protowire.AppendTag(b, 4, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(id.BatchIdx()))
		b = protowire.AppendTag(b, 6, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(id.BatchSize()))
	}
	return base64.StdEncoding.EncodeToString(b)
}

// TestFallbackOutputTopic: a function that never writes to reply-to (simulated: it consumes
// the input topic and answers on the output topic with __pfn_input_msg_id__ in Java's layout,
// forwarding the input's properties as Java functions do) is matched on its output topic. The
// function is found through a (fake) admin API, so the fallback is on automatically.
func TestFallbackOutputTopic(t *testing.T) {
	t.Parallel()
	client := pulsartest.Client(t)
	in, out := pulsartest.Topic(t), pulsartest.Topic(t)
	name := pulsartest.Name(t)
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/admin/v3/functions/public/default/"+name {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"name": name, "runtime": "JAVA", // the test fails on a write error
			"inputSpecs": map[string]any{in: map[string]any{}}, "output": out})
	}))
	t.Cleanup(admin.Close)

	consumer, err := client.Subscribe(pulsar.ConsumerOptions{Topic: in, SubscriptionName: "java-fn",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	require.NoError(t, err)
	t.Cleanup(consumer.Close)
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: out})
	require.NoError(t, err)
	t.Cleanup(producer.Close)
	fnCtx, stopFn := context.WithCancel(context.Background())
	fnDone := make(chan struct{})
	go func() { // the "Java function": upper-cases, one output per input, no reply-to
		defer close(fnDone)
		for {
			m, err := consumer.Receive(fnCtx)
			if err != nil {
				return
			}
			props := map[string]string{}
			for k, v := range m.Properties() {
				props[k] = v // forwardSourceMessageProperty
			}
			props[invocation.InputTopic] = m.Topic()
			props[invocation.InputMessageID] = javaMessageID(m.ID())
			if _, err := producer.Send(fnCtx, &pulsar.ProducerMessage{Payload: []byte(strings.ToUpper(string(m.Payload()))), Properties: props}); err != nil {
				return
			}
			if err := consumer.Ack(m); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { stopFn(); <-fnDone })

	ts, inv := newTrigger(t, pulsarinvoke.Config{AdminURL: admin.URL})
	for _, body := range []string{"hello", "second", "third"} {
		resp, got := post(t, ts.URL+"/function/"+name, body, "X-Timeout", "20s", "X-Message-Property-color", "blue")
		require.Equal(t, http.StatusOK, resp.StatusCode, got)
		assert.Equal(t, strings.ToUpper(body), got)
		assert.Equal(t, "blue", resp.Header.Get("X-Message-Property-color"))
	}
	assert.Equal(t, uint64(3), inv.Stats().FallbackMatched)
}

// TestDeadline: nobody consumes the input topic, so X-Timeout: 1s ends in 504 with the id.
func TestDeadline(t *testing.T) {
	t.Parallel()
	in := pulsartest.Topic(t)
	name := pulsartest.Name(t)
	fn, err := manifest.Parse(name+".yaml", []byte("name: "+name+"\ngo: functions/echo\ninputs: ["+in+"]\n"))
	require.NoError(t, err)
	ts, inv := newTrigger(t, pulsarinvoke.Config{Functions: []*manifest.Function{fn}})
	start := time.Now()
	resp, body := post(t, ts.URL+"/function/"+name, "x", "X-Timeout", "1s")
	assert.Equal(t, http.StatusGatewayTimeout, resp.StatusCode, body)
	id := resp.Header.Get("X-Invocation-Id")
	require.NotEmpty(t, id)
	assert.Contains(t, body, `"invocation_id":"`+id+`"`)
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Zero(t, inv.Stats().Pending, "the call is forgotten")

	resp, body = post(t, ts.URL+"/function/nope-"+name, "x")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, body)
}

// TestPublish: the topics route publishes without waiting.
func TestPublish(t *testing.T) {
	t.Parallel()
	client := pulsartest.Client(t)
	topic := pulsartest.Topic(t)
	c, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "check"})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	ts, _ := newTrigger(t, pulsarinvoke.Config{})
	short := strings.TrimPrefix(topic, "persistent://public/default/")
	resp, body := post(t, ts.URL+"/v1/topics/public/default/"+short, "event", "X-Message-Key", "k", "Content-Type", "text/plain")
	require.Equal(t, http.StatusAccepted, resp.StatusCode, body)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := c.Receive(ctx)
	require.NoError(t, err)
	assert.Equal(t, "event", string(m.Payload()))
	assert.Equal(t, "k", m.Key())
	assert.Equal(t, "text/plain", m.Properties()[invocation.ContentType])
}

// TestPulsarDown: with a broker that does not answer, New fails within its ctx instead of
// hanging.
func TestPulsarDown(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := pulsarinvoke.New(ctx, pulsarinvoke.Config{ServiceURL: "pulsar://127.0.0.1:1"})
	assert.Error(t, err)
	assert.Less(t, time.Since(start), 5*time.Second)
}
