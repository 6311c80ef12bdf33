package pulsarinvoke

import (
	"context"

	"github.com/apache/pulsar-client-go/pulsar"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/fnhost/fnhost/internal/tracing"
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
