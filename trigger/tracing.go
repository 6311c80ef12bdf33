package trigger

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/fnhost/fnhost/functions/pf/invocation"
	"github.com/fnhost/fnhost/internal/tracing"
)

// tracerName is the instrumentation scope of the trigger's spans.
const tracerName = "github.com/fnhost/fnhost/trigger"

// Span attributes of fnhost's own.
var (
	attrFunction     = attribute.Key("fnhost.function")      // tenant/namespace/name
	attrInvocationID = attribute.Key("fnhost.invocation.id") // as X-Invocation-Id
)

// traceRequest is the tracing middleware (installed only with Config.TracerProvider): one
// SERVER span per request, named after the route template, continuing the caller's trace
// when a traceparent header came in. Handlers find the span in c.Request.Context().
func (s *Server) traceRequest(c *gin.Context) {
	r := c.Request
	ctx := tracing.Propagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	method := r.Method
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
	default:
		method = "_OTHER" // semantic conventions: unknown methods are not span names
	}
	route, name := c.FullPath(), method
	attrs := []attribute.KeyValue{semconv.HTTPRequestMethodKey.String(method), semconv.URLPath(r.URL.Path)}
	if route != "" {
		name += " " + route
		attrs = append(attrs, semconv.HTTPRoute(route))
	}
	ctx, span := s.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
	c.Request = r.WithContext(ctx)
	defer func() {
		status := c.Writer.Status()
		if v, ok := c.Get(keyStatus); ok {
			status = v.(int)
		}
		span.SetAttributes(semconv.HTTPResponseStatusCode(status))
		if fn := c.GetString(keyFunction); fn != "" {
			span.SetAttributes(attrFunction.String(fn))
		}
		if id := c.Writer.Header().Get(headerInvocationID); id != "" {
			span.SetAttributes(attrInvocationID.String(id))
		}
		if status >= http.StatusInternalServerError {
			// Server spans mark 5xx only: a 4xx is the caller's error, not the server's.
			span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(status)))
			span.SetStatus(codes.Error, http.StatusText(status))
		}
		span.End()
	}()
	c.Next()
}

// traceContext returns the trace context an invocation or event carries on: with tracing
// on, the request's SERVER span's; off, the caller's traceparent and tracestate as given.
func (s *Server) traceContext(c *gin.Context, traceParent, traceState string) (string, string) {
	if s.tracer == nil {
		return traceParent, traceState
	}
	props := make(map[string]string, 2)
	tracing.Inject(c.Request.Context(), props)
	if props[invocation.TraceParent] == "" {
		return traceParent, traceState
	}
	return props[invocation.TraceParent], props[invocation.TraceState]
}
