package host

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/fnhost/fnhost/functions/pf/invocation"
)

// TestFunctionSeesTheInvocationSpan: with tracing on, the function's input carries the
// invocation span's context, not its caller's; the message's own properties stay as they were.
func TestFunctionSeesTheInvocationSpan(t *testing.T) {
	t.Parallel()
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, span := tp.Tracer("test").Start(context.Background(), "invoke")
	defer span.End()
	in := map[string]string{"k": "v", invocation.TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	got := invocationSpan{span: span, ctx: ctx}.ForFunction(in)
	sc := span.SpanContext()
	assert.Equal(t, "00-"+sc.TraceID().String()+"-"+sc.SpanID().String()+"-01", got[invocation.TraceParent])
	assert.Equal(t, "v", got["k"])
	assert.Equal(t, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", in[invocation.TraceParent], "the input is not modified")

	off := invocationSpan{}.ForFunction(in)
	assert.Equal(t, in, off, "with tracing off the function sees its input as it came")
}
