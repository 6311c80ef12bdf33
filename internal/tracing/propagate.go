package tracing

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/fnhost/fnhost/functions/pf/invocation"
)

// w3c is the propagator of fnhost's messages: DESIGN §3 makes the W3C traceparent and
// tracestate properties the contract, whatever propagator a process installs globally.
var w3c propagation.TraceContext

// Propagator returns the W3C TraceContext propagator, for HTTP headers.
func Propagator() propagation.TextMapPropagator { return w3c }

// Inject sets props' traceparent and tracestate to the span context of ctx, replacing what
// was there. Without a valid span context it leaves props alone.
func Inject(ctx context.Context, props map[string]string) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	delete(props, invocation.TraceState)
	w3c.Inject(ctx, propagation.MapCarrier(props))
}

// Extract returns ctx with the remote span context of props' traceparent and tracestate as
// its parent, or ctx itself when props carry none (or an invalid one).
func Extract(ctx context.Context, props map[string]string) context.Context {
	if props[invocation.TraceParent] == "" {
		return ctx
	}
	return w3c.Extract(ctx, propagation.MapCarrier(props))
}

// Install makes tp and the W3C propagator OpenTelemetry's globals, for libraries that use
// them, and routes OpenTelemetry's internal errors (a failed export) to onError. Only main
// calls it; with a nil tp it does nothing.
func Install(tp trace.TracerProvider, onError func(error)) {
	if tp == nil {
		return
	}
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(w3c)
	otel.SetErrorHandler(otel.ErrorHandlerFunc(onError))
}
