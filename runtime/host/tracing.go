package host

import (
	"context"
	"maps"

	"github.com/apache/pulsar-client-go/pulsar"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/fnhost/fnhost/functions/pf/invocation"
	"github.com/fnhost/fnhost/functions/pf/plugin"
	"github.com/fnhost/fnhost/internal/engine"
	"github.com/fnhost/fnhost/internal/tracing"
)

// tracerName is the instrumentation scope of the runtime's spans.
const tracerName = "github.com/fnhost/fnhost/runtime/host"

// Span attributes of fnhost's own.
const (
	attrFunction     = attribute.Key("fnhost.function")      // tenant/namespace/name
	attrInvocationID = attribute.Key("fnhost.invocation.id") // the trigger's invocation id
	attrOutcome      = attribute.Key("fnhost.outcome")       // success, user, panic, deadline, canceled, not_run, publish
)

// invocationSpan is the span of one invocation. With tracing off its span is nil: it then
// only carries the input's trace context on to the outputs, unchanged, as the SDK's Pulsar
// Functions instance does.
type invocationSpan struct {
	span trace.Span
	ctx  context.Context   // carries span
	in   map[string]string // the input's properties
}

// consumerTracer is the engine's Tracer of a function fed from Pulsar.
type consumerTracer struct {
	tracer trace.Tracer
	fqfn   string
}

var _ engine.Tracer = (*consumerTracer)(nil)

// Start implements engine.Tracer: the CONSUMER span of processing msg, the child of the trace
// context msg carries (the trigger's PRODUCER span).
func (t *consumerTracer) Start(ctx context.Context, msg pulsar.Message) (context.Context, engine.Span) {
	props := msg.Properties()
	attrs := []attribute.KeyValue{
		semconv.MessagingSystemPulsar, semconv.MessagingOperationTypeProcess, semconv.MessagingOperationName("process"),
		semconv.MessagingDestinationName(msg.Topic()), semconv.MessagingMessageID(msg.ID().String()),
		attrFunction.String(t.fqfn),
	}
	if id := props[invocation.ID]; id != "" {
		attrs = append(attrs, attrInvocationID.String(id))
	}
	if n := msg.RedeliveryCount(); n > 0 {
		attrs = append(attrs, attribute.Int("messaging.pulsar.redelivery_count", int(n)))
	}
	ctx, span := t.tracer.Start(tracing.Extract(ctx, props), "process "+msg.Topic(),
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
	return ctx, invocationSpan{span: span, ctx: ctx, in: props}
}

// Propagate sets the trace context of outputs' properties: the span's, or with tracing off
// the input's traceparent and tracestate, so that replies stay in the caller's trace.
func (s invocationSpan) Propagate(props map[string]string) {
	if s.span != nil {
		tracing.Inject(s.ctx, props)
		return
	}
	invocation.CopyTraceContext(props, s.in)
}

// ForFunction returns the properties the function sees: props, with the span's trace context
// when tracing is on, so that spans the function starts from its input's traceparent are
// children of the invocation's span. props is not modified.
func (s invocationSpan) ForFunction(props map[string]string) map[string]string {
	if s.span == nil {
		return props
	}
	c := maps.Clone(props)
	if c == nil {
		c = make(map[string]string, 2)
	}
	tracing.Inject(s.ctx, c)
	return c
}

// End ends the span with the invocation's outcome: err (not run), res (the function's
// result), sendErr (its outputs not persisted).
func (s invocationSpan) End(err error, res plugin.Result, sendErr error) {
	if s.span == nil {
		return
	}
	switch {
	case err != nil:
		s.span.SetAttributes(attrOutcome.String("not_run"))
		s.span.RecordError(err)
		s.span.SetStatus(codes.Error, err.Error())
	case res.Kind != plugin.KindNone:
		s.span.SetAttributes(attrOutcome.String(res.Kind.String()))
		s.span.SetStatus(codes.Error, res.Error)
	case sendErr != nil:
		s.span.SetAttributes(attrOutcome.String("publish"))
		s.span.RecordError(sendErr)
		s.span.SetStatus(codes.Error, sendErr.Error())
	default:
		s.span.SetAttributes(attrOutcome.String("success"))
	}
	s.span.End()
}

// traceInvoke starts the INTERNAL span of an in-process invocation of fqfn (embedded mode), the
// child of ctx's span (the trigger's SERVER span, or the invocation whose output feeds this
// one), else of the trace context in req's properties.
func (h *Host) traceInvoke(ctx context.Context, fqfn string, req *plugin.Request) (context.Context, invocationSpan) {
	if h.tracer == nil {
		return ctx, invocationSpan{}
	}
	if !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = tracing.Extract(ctx, req.Properties)
	}
	attrs := []attribute.KeyValue{attrFunction.String(fqfn)}
	if id := req.Properties[invocation.ID]; id != "" {
		attrs = append(attrs, attrInvocationID.String(id))
	}
	ctx, span := h.tracer.Start(ctx, "invoke "+fqfn, trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
	return ctx, invocationSpan{span: span, ctx: ctx}
}
