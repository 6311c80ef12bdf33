package instance

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
	"github.com/fnhost/fnhost/functions/pf/invocation"
)

// TestTraceContextPropagated: every output and reply carries its input's traceparent and
// tracestate unchanged, with forwardProperties off too, and the final reply of a failure.
func TestTraceContextPropagated(t *testing.T) {
	t.Parallel()
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	props := map[string]string{invocation.ID: "inv", invocation.ReplyTo: "reply", invocation.TraceParent: tp, invocation.TraceState: "k=v"}
	for _, h := range []call.Handler{
		func(ctx context.Context, _ call.Env, inv *call.Invocation) ([]byte, error) {
			if err := inv.Emit(ctx, call.Output{Payload: []byte("a")}); err != nil {
				return nil, err
			}
			return []byte("b"), nil
		},
		failing,
	} {
		out := &fakeOut{}
		p := newTestProcessor(t, h, out, func(c *Config) { c.ForwardProperties = false })
		p.process(delivery{from: &fakeAcker{}, msg: input("m", props)})
		p.inflight.Wait()
		msgs := append(out.to("out"), out.to("reply")...)
		require.NotEmpty(t, msgs)
		for _, m := range msgs {
			assert.Equal(t, tp, m.Properties[invocation.TraceParent], "payload %q", m.Payload)
			assert.Equal(t, "k=v", m.Properties[invocation.TraceState])
		}
	}
}
