package instance

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
	"github.com/fnhost/fnhost/functions/pf/plugin"
	"github.com/fnhost/fnhost/internal/engine"
)

func echo(_ context.Context, _ call.Env, inv *call.Invocation) ([]byte, error) {
	return inv.Message.Payload(), nil
}

// TestFunctionInvoke: the handler's outcomes as the engine sees them.
func TestFunctionInvoke(t *testing.T) {
	t.Parallel()
	msg := &call.Message{TopicName: "in", Data: []byte("x"), MsgID: pulsar.NewMessageID(1, 2, -1, 0)}
	tests := []struct {
		name    string
		h       call.Handler
		timeout time.Duration
		kind    plugin.Kind
		outputs []plugin.Event
	}{
		{"returned output is the last", echo, 0, plugin.KindNone,
			[]plugin.Event{{Kind: plugin.EventOutput, Output: plugin.Output{Payload: []byte("x")}, Last: true}}},
		{"emitted outputs are not", func(ctx context.Context, _ call.Env, inv *call.Invocation) ([]byte, error) {
			return nil, inv.Emit(ctx, call.Output{Payload: []byte("a"), Key: "k"})
		}, 0, plugin.KindNone, []plugin.Event{{Kind: plugin.EventOutput, Output: plugin.Output{Payload: []byte("a"), Key: "k"}}}},
		{"error", func(context.Context, call.Env, *call.Invocation) ([]byte, error) {
			return nil, errors.New("boom")
		}, 0, plugin.KindUser, nil},
		{"panic", func(context.Context, call.Env, *call.Invocation) ([]byte, error) {
			panic("oops")
		}, 0, plugin.KindPanic, nil},
		{"timeout", func(ctx context.Context, _ call.Env, _ *call.Invocation) ([]byte, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}, time.Millisecond, plugin.KindDeadline, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &function{handler: call.Safe(tc.h)}
			ctx := t.Context()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			var got []plugin.Event
			res, _, err := f.Invoke(ctx, &engine.Call{Message: msg}, func(e plugin.Event) error {
				got = append(got, e)
				return nil
			})
			require.NoError(t, err)
			assert.Equal(t, tc.kind, res.Kind, res.Error)
			assert.Equal(t, tc.outputs, got)
			if tc.kind == plugin.KindPanic {
				assert.NotEmpty(t, res.Stack)
			}
		})
	}
}
