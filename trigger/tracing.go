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
		// A span names the function even when the request failed, but never malformed names.
		if fn := namedFunction(c, route, status); fn.Name != "" && checkNames(fn.Tenant, fn.Namespace, fn.Name) == nil {
			span.SetAttributes(attrFunction.String(fn.String()))
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

// traceCallback starts the CLIENT span of one callback attempt, a child of the invocation's
// SERVER span (the async invocation's ctx keeps the request's values), and writes its trace
// context into req's headers so that the receiver can continue the trace. end records the
// receiver's status (0 when none came) and err. With tracing off it changes nothing.
//
// The URL is recorded as scheme, address and port only: a callback URL often carries a token
// in its path or query.
func (s *Server) traceCallback(req *http.Request, id string, attempt int) (_ *http.Request, end func(status int, err error)) {
	if s.tracer == nil {
		return req, func(int, error) {}
	}
	u := req.URL
	attrs := []attribute.KeyValue{
		semconv.HTTPRequestMethodKey.String(req.Method), semconv.URLScheme(u.Scheme),
		semconv.ServerAddress(u.Hostname()), attrInvocationID.String(id),
	}
	if port, err := strconv.Atoi(u.Port()); err == nil {
		attrs = append(attrs, semconv.ServerPort(port))
	}
	if attempt > 1 {
		attrs = append(attrs, semconv.HTTPRequestResendCount(attempt-1))
	}
	ctx, span := s.tracer.Start(req.Context(), req.Method, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	req = req.WithContext(ctx)
	tracing.Propagator().Inject(ctx, propagation.HeaderCarrier(req.Header))
	return req, func(status int, err error) {
		if status != 0 {
			span.SetAttributes(semconv.HTTPResponseStatusCode(status))
		}
		switch {
		case status >= http.StatusBadRequest:
			// Client spans mark 4xx as well: the request failed.
			span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(status)))
			span.SetStatus(codes.Error, http.StatusText(status))
		case err != nil:
			span.SetAttributes(semconv.ErrorTypeKey.String("transport"))
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}
