package trigger

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

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
	w = do(s, http.MethodPost, "/function/nope", "x", nil)
	require.Equal(t, http.StatusNotFound, w.Code)
	w = do(s, http.MethodGet, "/v1/functions/public/default/nope", "", nil)
	require.Equal(t, http.StatusNotFound, w.Code)

	spans := rec.Ended()
	require.Len(t, spans, 4)
	echo, crash := spans[0], spans[1]
	// A span names the function an invocation asked for, found or not (unlike a metrics
	// label); a details request only one the catalogue lists.
	assert.Equal(t, "public/default/crash", attrs(crash)["fnhost.function"].AsString())
	assert.Equal(t, "public/default/nope", attrs(spans[2])["fnhost.function"].AsString())
	assert.NotContains(t, attrs(spans[3]), attribute.Key("fnhost.function"))

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

// spanEnds hands every ended span to a channel.
type spanEnds chan sdktrace.ReadOnlySpan

func (e spanEnds) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (e spanEnds) OnEnd(s sdktrace.ReadOnlySpan)                   { e <- s }
func (e spanEnds) Shutdown(context.Context) error                  { return nil }
func (e spanEnds) ForceFlush(context.Context) error                { return nil }

// TestCallbackTraced: each callback attempt is a CLIENT span under the invocation's SERVER
// span, and the receiver gets its trace context.
func TestCallbackTraced(t *testing.T) {
	t.Parallel()
	ends := make(spanEnds, 16)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(ends))
	parents := make(chan string, 4)
	var calls atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parents <- r.Header.Get("traceparent")
		if calls.Add(1) == 1 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(hook.Close)
	s := newServer(t, newFake(), func(c *Config) {
		c.TracerProvider = tp
		c.CallbackBackoff, c.CallbackMaxBackoff = time.Millisecond, 5*time.Millisecond
	})
	w := do(s, http.MethodPost, "/function/echo", "x", map[string]string{
		"Prefer": "respond-async", "X-Callback-Url": hook.URL + "/done?token=secret", "traceparent": callerParent,
	})
	require.Equal(t, http.StatusAccepted, w.Code, w.Body.String())
	id := w.Header().Get(headerInvocationID)

	var server sdktrace.ReadOnlySpan
	var clients []sdktrace.ReadOnlySpan
	for len(clients) < 2 || server == nil {
		sp := recv(t, ends, "spans of the request and of two callback attempts")
		switch sp.SpanKind() {
		case trace.SpanKindServer:
			server = sp
		case trace.SpanKindClient:
			clients = append(clients, sp)
		}
	}
	first, second := clients[0], clients[1]
	for i, c := range clients {
		assert.Equal(t, "POST", c.Name())
		assert.Equal(t, server.SpanContext().TraceID(), c.SpanContext().TraceID(), "attempt %d", i+1)
		assert.Equal(t, server.SpanContext().SpanID(), c.Parent().SpanID(), "attempt %d is a child of the SERVER span", i+1)
		a := attrs(c)
		assert.Equal(t, id, a["fnhost.invocation.id"].AsString())
		assert.Equal(t, "127.0.0.1", a["server.address"].AsString())
		assert.NotContains(t, a, attribute.Key("url.full"), "the URL's token is not recorded")
		got := recv(t, parents, "the traceparent the receiver got")
		assert.Equal(t, "00-"+c.SpanContext().TraceID().String()+"-"+c.SpanContext().SpanID().String()+"-01", got)
	}
	assert.Equal(t, int64(503), attrs(first)["http.response.status_code"].AsInt64())
	assert.Equal(t, codes.Error, first.Status().Code)
	assert.NotContains(t, attrs(first), attribute.Key("http.request.resend_count"))
	assert.Equal(t, int64(200), attrs(second)["http.response.status_code"].AsInt64())
	assert.Equal(t, int64(1), attrs(second)["http.request.resend_count"].AsInt64())
	assert.NotEqual(t, codes.Error, second.Status().Code)
}
