package pulsarinvoke

import (
	"context"

	"github.com/apache/pulsar-client-go/pulsar"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/fnhost/fnhost/functions/pf/invocation"
	"github.com/fnhost/fnhost/internal/tracing"
	"github.com/fnhost/fnhost/trigger"
)

// tracerName is the instrumentation scope of the invoker's spans.
const tracerName = "github.com/fnhost/fnhost/trigger/pulsarinvoke"

// sendSpan is the PRODUCER span of one publish; the zero value (tracing off) does nothing.
type sendSpan struct{ span trace.Span }

// traceSend starts the PRODUCER span of publishing m to topic, as a child of ctx's span (the
// trigger's SERVER span), and makes m carry its context in place of the request's. fn and id
// name the function and the invocation; empty for an event. Tracing off, it returns ctx and
// a sendSpan that does nothing.
func (inv *Invoker) traceSend(ctx context.Context, topic, fn, id string, m *pulsar.ProducerMessage) (context.Context, sendSpan) {
	if inv.tracer == nil {
		return ctx, sendSpan{}
	}
	attrs := []attribute.KeyValue{
		semconv.MessagingSystemPulsar, semconv.MessagingOperationTypeSend, semconv.MessagingOperationName("send"),
		semconv.MessagingDestinationName(topic),
	}
	if fn != "" {
		attrs = append(attrs, attribute.String("fnhost.function", fn), attribute.String("fnhost.invocation.id", id))
	}
	ctx, span := inv.tracer.Start(ctx, "send "+topic, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	tracing.Inject(ctx, m.Properties)
	return ctx, sendSpan{span}
}

// end ends the span with the broker's receipt: the message id, or the error.
func (s sendSpan) end(id pulsar.MessageID, err error) {
	if s.span == nil {
		return
	}
	if err != nil {
		s.span.RecordError(err)
		s.span.SetStatus(codes.Error, err.Error())
	} else if id != nil {
		s.span.SetAttributes(semconv.MessagingMessageID(id.String()))
	}
	s.span.End()
}

// receiveSpan is the CONSUMER span of one invocation's replies, a child of the trigger's
// SERVER span: it starts with the first reply, links to the function invocation's span whose
// context the reply carries, and ends with the invocation. With the PRODUCER span of the
// publish and the runtime's CONSUMER span of the invocation, the trace goes from the HTTP
// request through the function and back. Tracing off, it does nothing.
type receiveSpan struct {
	inv    *Invoker
	ctx    context.Context
	fn, id string
	span   trace.Span
}

// got starts the span at the first reply.
func (s *receiveSpan) got(r reply) {
	if s.inv.tracer == nil || s.span != nil {
		return
	}
	var opts []trace.SpanStartOption
	if r.traceParent != "" {
		remote := tracing.Extract(context.Background(), map[string]string{
			invocation.TraceParent: r.traceParent, invocation.TraceState: r.traceState,
		})
		if sc := trace.SpanContextFromContext(remote); sc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
		}
	}
	topic := s.inv.cfg.ReplyTopic
	opts = append(opts, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
		semconv.MessagingSystemPulsar, semconv.MessagingOperationTypeReceive, semconv.MessagingOperationName("receive"),
		semconv.MessagingDestinationName(topic),
		attribute.String("fnhost.function", s.fn), attribute.String("fnhost.invocation.id", s.id),
	))
	_, s.span = s.inv.tracer.Start(s.ctx, "receive "+topic, opts...)
}

// end ends the span with the invocation's outcome.
func (s *receiveSpan) end(res trigger.Result, err error) {
	if s.span == nil {
		return
	}
	s.span.SetAttributes(attribute.Int("fnhost.outputs", res.Outputs))
	switch {
	case err != nil:
		s.span.RecordError(err)
		s.span.SetStatus(codes.Error, err.Error())
	case res.Err != nil:
		s.span.SetStatus(codes.Error, res.Err.Error())
	}
	s.span.End()
}
