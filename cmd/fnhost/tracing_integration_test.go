//go:build integration

package main

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/fnhost/fnhost/functions/pf/invocation"
	"github.com/fnhost/fnhost/internal/manifest"
	"github.com/fnhost/fnhost/internal/pulsartest"
	"github.com/fnhost/fnhost/internal/tracing"
	"github.com/fnhost/fnhost/runtime/host"
	"github.com/fnhost/fnhost/trigger"
	"github.com/fnhost/fnhost/trigger/pulsarinvoke"
)

// TestTracingThroughPulsar: trigger → Pulsar → host runtime → Pulsar → trigger, traced into
// an in-test OTLP receiver. The caller's trace id runs through the trigger's SERVER span, the
// PRODUCER span of the publish and the runtime's CONSUMER span, each the child of the one
// before, and the reply message carries the CONSUMER span's context.
func TestTracingThroughPulsar(t *testing.T) {
	t.Parallel()
	pulsartest.Require(t)
	recv := newOTLPReceiver(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// One provider per process, as in production: a trigger and a runtime.
	newProvider := func(service string) (trace.TracerProvider, interface{ ForceFlush(context.Context) error }) {
		tp, shutdown, err := tracing.New(ctx, tracing.Config{Enabled: true, Endpoint: recv.URL + "/v1/traces", DefaultServiceName: service})
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, shutdown(context.Background())) })
		flusher, ok := tp.(interface{ ForceFlush(context.Context) error })
		require.True(t, ok, "the SDK's provider flushes")
		return tp, flusher
	}
	trigTP, flushTrigger := newProvider("fnhost-trigger")
	hostTP, flushRuntime := newProvider("fnhost-runtime")

	in, out, replyTopic := pulsartest.Topic(t), pulsartest.Topic(t), pulsartest.Topic(t)
	echo := exampleManifest(t, "echo", "echo-"+pulsartest.Name(t), in, out, "")

	// The runtime.
	h, err := host.New(ctx, host.Config{Functions: []*manifest.Function{echo}, PulsarURL: pulsartest.ServiceURL(),
		Logger: pulsartest.Logger(t), BuildDir: filepath.Join(t.TempDir(), "build"), TracerProvider: hostTP})
	require.NoError(t, err)
	hctx, stopHost := context.WithCancel(context.Background())
	hostDone := make(chan error, 1)
	go func() { hostDone <- h.Run(hctx) }()
	t.Cleanup(func() {
		stopHost()
		select {
		case err := <-hostDone:
			assert.NoError(t, err)
		case <-time.After(2 * time.Minute):
			t.Error("host did not stop")
		}
	})

	// The trigger, with a reply topic the test reads too.
	inv, err := pulsarinvoke.New(ctx, pulsarinvoke.Config{ServiceURL: pulsartest.ServiceURL(), Functions: []*manifest.Function{echo},
		ReplyTopic: replyTopic, Logger: pulsartest.Logger(t), TracerProvider: trigTP})
	require.NoError(t, err)
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, inv.Close(cctx))
	})
	srv, err := trigger.New(trigger.Config{Invoker: inv, Publisher: inv, Logger: pulsartest.Logger(t), TracerProvider: trigTP})
	require.NoError(t, err)
	web := httptest.NewServer(srv.Handler())
	t.Cleanup(web.Close)

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, web.URL+"/function/"+echo.Name, strings.NewReader("hello"))
	require.NoError(t, err)
	req.Header.Set("traceparent", callerTraceParent)
	req.Header.Set("tracestate", "vendor=x")
	resp, body := doRequest(t, req)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, "hello", body)
	invocationID := resp.Header.Get("X-Invocation-Id")

	// The spans end asynchronously (the runtime's once its outputs are persisted): flush until
	// all three arrived, within a bound.
	var server, send, process, receive *tracepb.Span
	require.Eventually(t, func() bool {
		_ = flushTrigger.ForceFlush(ctx) // a failed export shows as missing spans
		_ = flushRuntime.ForceFlush(ctx)
		server = recv.find(t, "POST /function/:name")
		send = recv.find(t, "send "+in)
		process = recv.find(t, "process "+in)
		receive = recv.find(t, "receive "+replyTopic)
		return server != nil && send != nil && process != nil && receive != nil
	}, time.Minute, 100*time.Millisecond, "spans received: %v", recv.names())

	for _, s := range []*tracepb.Span{server, send, process, receive} {
		assert.Equal(t, callerTraceID, traceID(s), "%s continues the caller's trace", s.GetName())
	}
	assert.Equal(t, tracepb.Span_SPAN_KIND_SERVER, server.GetKind())
	assert.Equal(t, callerSpanID, parentID(server))
	assert.Equal(t, invocationID, attr(server, "fnhost.invocation.id"))
	assert.Equal(t, echo.FQFN(), attr(server, "fnhost.function"))

	assert.Equal(t, tracepb.Span_SPAN_KIND_PRODUCER, send.GetKind())
	assert.Equal(t, spanID(server), parentID(send), "the publish is the trigger span's child")
	assert.Equal(t, "pulsar", attr(send, "messaging.system"))

	assert.Equal(t, tracepb.Span_SPAN_KIND_CONSUMER, process.GetKind())
	assert.Equal(t, spanID(send), parentID(process), "the invocation is the publish's child")
	assert.Equal(t, "pulsar", attr(process, "messaging.system"))
	assert.Equal(t, in, attr(process, "messaging.destination.name"))
	assert.NotEmpty(t, attr(process, "messaging.message.id"))
	assert.Equal(t, echo.FQFN(), attr(process, "fnhost.function"))
	assert.Equal(t, invocationID, attr(process, "fnhost.invocation.id"))
	assert.Equal(t, "success", attr(process, "fnhost.outcome"))

	// And back: the trigger's receipt of the reply, linked to the invocation that sent it.
	assert.Equal(t, tracepb.Span_SPAN_KIND_CONSUMER, receive.GetKind())
	assert.Equal(t, spanID(server), parentID(receive), "the reply's receipt is the trigger span's child")
	assert.Equal(t, replyTopic, attr(receive, "messaging.destination.name"))
	assert.Equal(t, invocationID, attr(receive, "fnhost.invocation.id"))
	assert.Equal(t, int64(1), attr(receive, "fnhost.outputs"))
	require.Len(t, receive.GetLinks(), 1, "a link to the invocation")
	assert.Equal(t, spanID(process), hex.EncodeToString(receive.GetLinks()[0].GetSpanId()))

	// The reply (and the output) carry the invocation span's context.
	client := pulsartest.Client(t)
	for _, topic := range []string{replyTopic, out} {
		reader, err := client.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.EarliestMessageID()})
		require.NoError(t, err)
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		var got pulsar.Message
		for got == nil {
			m, err := reader.Next(rctx)
			require.NoError(t, err, "no message of invocation %s on %s", invocationID, topic)
			if m.Properties()[invocation.ID] == invocationID {
				got = m
			}
		}
		cancel()
		reader.Close()
		assert.Equal(t, "00-"+callerTraceID+"-"+spanID(process)+"-01", got.Properties()[invocation.TraceParent], "on %s", topic)
		assert.Equal(t, "vendor=x", got.Properties()[invocation.TraceState], "on %s", topic)
	}
}

func doRequest(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }() // a response body: closing it only releases the connection
	var b strings.Builder
	_, err = io.Copy(&b, resp.Body)
	require.NoError(t, err)
	return resp, b.String()
}
