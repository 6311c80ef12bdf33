package trigger

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

const callerParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

func TestTracing(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	inv := newFake()
	s := newServer(t, inv, func(c *Config) { c.TracerProvider = tp })

	w := do(s, http.MethodPost, "/function/echo", "hi", map[string]string{"traceparent": callerParent, "tracestate": "k=v"})
	require.Equal(t, http.StatusOK, w.Code)
	w = do(s, http.MethodPost, "/v1/functions/public/default/crash/invoke", "x", nil)
	require.Equal(t, http.StatusInternalServerError, w.Code)

	spans := rec.Ended()
	require.Len(t, spans, 2)
	echo, crash := spans[0], spans[1]

	assert.Equal(t, "POST /function/:name", echo.Name())
	assert.Equal(t, trace.SpanKindServer, echo.SpanKind())
	assert.Equal(t, "0af7651916cd43dd8448eb211c80319c", echo.SpanContext().TraceID().String(), "the caller's trace continues")
	assert.Equal(t, "b7ad6b7169203331", echo.Parent().SpanID().String())
	a := attrs(echo)
	assert.Equal(t, "POST", a["http.request.method"].AsString())
	assert.Equal(t, "/function/:name", a["http.route"].AsString())
	assert.Equal(t, int64(200), a["http.response.status_code"].AsInt64())
	assert.Equal(t, "public/default/echo", a["fnhost.function"].AsString())
	assert.NotEmpty(t, a["fnhost.invocation.id"].AsString())

	// The invocation carries the SERVER span's context, not the caller's header.
	inv.mu.Lock()
	req := inv.calls[0]
	inv.mu.Unlock()
	assert.Equal(t, "00-"+echo.SpanContext().TraceID().String()+"-"+echo.SpanContext().SpanID().String()+"-01", req.TraceParent)
	assert.Equal(t, "k=v", req.TraceState)

	// A panic is recorded with the status recovery wrote.
	assert.Equal(t, "POST /v1/functions/:tenant/:namespace/:name/invoke", crash.Name())
	assert.Equal(t, int64(500), attrs(crash)["http.response.status_code"].AsInt64())
	assert.Equal(t, codes.Error, crash.Status().Code)
	assert.False(t, crash.Parent().IsValid(), "no traceparent: a new trace")
}

func TestTracingOffPassesTraceParentThrough(t *testing.T) {
	t.Parallel()
	inv := newFake()
	s := newServer(t, inv, nil)
	w := do(s, http.MethodPost, "/function/echo", "hi", map[string]string{"traceparent": callerParent, "tracestate": "k=v"})
	require.Equal(t, http.StatusOK, w.Code)
	inv.mu.Lock()
	defer inv.mu.Unlock()
	assert.Equal(t, callerParent, inv.calls[0].TraceParent)
	assert.Equal(t, "k=v", inv.calls[0].TraceState)
}
