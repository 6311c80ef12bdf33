package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/fnhost/fnhost/internal/pulsartest"
)

// callerTraceParent is the trace context an HTTP caller sends.
const (
	callerTraceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpanID      = "00f067aa0ba902b7"
	callerTraceParent = "00-" + callerTraceID + "-" + callerSpanID + "-01"
)

// TestTracingEmbedded runs fnhost dev embedded (no Pulsar) with OTEL_EXPORTER_OTLP_ENDPOINT
// pointing at an in-test receiver, invokes echo with a caller's traceparent, and checks one
// connected trace: caller → trigger SERVER span → runtime INTERNAL span.
func TestTracingEmbedded(t *testing.T) {
	t.Parallel()
	recv := newOTLPReceiver(t)
	dir := t.TempDir()
	manifest := fmt.Sprintf("name: echo\ngo: %s\ninputs: [persistent://public/default/trace-in]\n", filepath.Join(pulsartest.Root(t), "functions", "echo"))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "echo.yaml"), []byte(manifest), 0o600))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	outR, outW := io.Pipe()
	var stderr strings.Builder
	done := make(chan error, 1)
	go func() {
		done <- run(runCtx, []string{"dev", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
			"--manifests", dir, "--build-dir", t.TempDir(), "--watch=false"},
			[]string{"FNHOST_LOG_LEVEL=warn", "OTEL_EXPORTER_OTLP_ENDPOINT=" + recv.URL, "OTEL_SERVICE_NAME=fnhost-test"},
			outW, &lockedWriter{w: &stderr})
		_ = outW.Close() // an io.PipeWriter closes without error
	}()
	curlLine := regexp.MustCompile(`curl -s -d 'hello fnhost' (http://\S+)`)
	var url string
	sc := bufio.NewScanner(outR)
	for sc.Scan() {
		if m := curlLine.FindStringSubmatch(sc.Text()); m != nil {
			url = m[1]
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, outR) }() // the rest of stdout, until run returns
	require.NotEmpty(t, url, "fnhost dev printed no curl line; stderr:\n%s", stderr.String())

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader("hi"))
	require.NoError(t, err)
	req.Header.Set("traceparent", callerTraceParent)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close() // a response body: closing it only releases the connection
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	invocationID := resp.Header.Get("X-Invocation-Id")

	// Shutdown flushes the spans: once run returns, the receiver has them all.
	stop()
	select {
	case err := <-done:
		require.NoError(t, err, "a clean shutdown; stderr:\n%s", stderr.String())
	case <-ctx.Done():
		t.Fatal("fnhost dev did not stop")
	}

	server := recv.find(t, "POST /function/:name")
	require.NotNil(t, server, "no trigger span among %v", recv.names())
	invoke := recv.find(t, "invoke public/default/echo")
	require.NotNil(t, invoke, "no runtime span among %v", recv.names())

	assert.Equal(t, tracepb.Span_SPAN_KIND_SERVER, server.GetKind())
	assert.Equal(t, callerTraceID, traceID(server), "the caller's trace continues")
	assert.Equal(t, callerSpanID, parentID(server))
	assert.Equal(t, int64(200), attr(server, "http.response.status_code"))
	assert.Equal(t, "/function/:name", attr(server, "http.route"))
	assert.Equal(t, invocationID, attr(server, "fnhost.invocation.id"))

	assert.Equal(t, tracepb.Span_SPAN_KIND_INTERNAL, invoke.GetKind())
	assert.Equal(t, callerTraceID, traceID(invoke))
	assert.Equal(t, spanID(server), parentID(invoke), "the invocation is the trigger span's child")
	assert.Equal(t, invocationID, attr(invoke, "fnhost.invocation.id"))
}
