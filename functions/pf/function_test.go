package pf

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
)

// fakeEnv is a call.Env for unit tests.
type fakeEnv struct {
	info    call.Info
	metrics map[string][]float64
}

func newFakeEnv() *fakeEnv {
	return &fakeEnv{
		info: call.Info{
			Tenant: "public", Namespace: "default", Name: "fn", InstanceID: 3,
			FuncID: "id-1", FuncVersion: "v-1", ClusterName: "standalone",
			InputTopics: []string{"in-a", "in-b"}, OutputTopic: "out",
			UserConfig: map[string]any{"word": "pulsar", "n": 2.0},
			Port:       9093, MetricsPort: 9094, ExpectedHealthCheckInterval: 30,
		},
		metrics: map[string][]float64{},
	}
}

func (e *fakeEnv) Info() *call.Info { return &e.info }
func (e *fakeEnv) Producer(topic string) (pulsar.Producer, error) {
	return nil, errors.New("no producers in unit tests: " + topic)
}
func (e *fakeEnv) RecordMetric(name string, v float64) { e.metrics[name] = append(e.metrics[name], v) }
func (e *fakeEnv) Logger() *slog.Logger                { return slog.New(slog.DiscardHandler) }

// invoke runs h once on payload and returns the return value, the emitted outputs and the error.
func invoke(t *testing.T, h call.Handler, env call.Env, payload string) (out []byte, emitted []string, err error) {
	t.Helper()
	inv := &call.Invocation{
		Message: &call.Message{TopicName: "in-a", Data: []byte(payload), MsgKey: "k1", Props: map[string]string{"p": "v"}},
		Emit: func(_ context.Context, o call.Output) error {
			emitted = append(emitted, string(o.Payload))
			return nil
		},
	}
	out, err = h(context.Background(), env, inv)
	return out, emitted, err
}

var errBoom = errors.New("boom")

func TestWrapShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler any
		wantOut string
		wantNil bool
		wantErr error
	}{
		{name: "func()", handler: func() {}, wantNil: true},
		{name: "func() error", handler: func() error { return errBoom }, wantNil: true, wantErr: errBoom},
		{name: "func(in) error", handler: func(in []byte) error { return nil }, wantNil: true},
		{name: "func() (out, error)", handler: func() ([]byte, error) { return []byte("x"), nil }, wantOut: "x"},
		{name: "func(in) (out, error)", handler: func(in []byte) ([]byte, error) { return append(in, '!'), nil }, wantOut: "hi!"},
		{name: "func(ctx) error", handler: func(context.Context) error { return nil }, wantNil: true},
		{name: "func(ctx, in) error", handler: func(_ context.Context, in []byte) error { return nil }, wantNil: true},
		{name: "func(ctx) (out, error)", handler: func(context.Context) ([]byte, error) { return []byte("c"), nil }, wantOut: "c"},
		{name: "func(ctx, in) (out, error)", handler: func(_ context.Context, in []byte) ([]byte, error) { return []byte(strings.ToUpper(string(in))), nil }, wantOut: "HI"},
		{name: "func(ctx, in) no result", handler: func(context.Context, []byte) {}, wantNil: true},
		{name: "func(ctx) no result", handler: func(context.Context) {}, wantNil: true},
		{name: "func(in) no result", handler: func([]byte) {}, wantNil: true},
		{name: "named byte slice output", handler: func(in []byte) (json []uint8, err error) { return in, nil }, wantOut: "hi"},
		{name: "nil output is no output", handler: func(in []byte) ([]byte, error) { return nil, nil }, wantNil: true},
		{name: "error with output", handler: func(in []byte) ([]byte, error) { return in, errBoom }, wantOut: "hi", wantErr: errBoom},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, err := wrap(tc.handler)
			require.NoError(t, err)
			out, _, err := invoke(t, h, newFakeEnv(), "hi")
			assert.ErrorIs(t, err, tc.wantErr)
			if tc.wantNil {
				assert.Nil(t, out)
			} else {
				assert.Equal(t, tc.wantOut, string(out))
			}
		})
	}
}

func TestWrapRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler any
		want    string
	}{
		{name: "nil", handler: nil, want: "handler is nil"},
		{name: "not a func", handler: 42, want: "is a int, want a func"},
		{name: "string input", handler: func(context.Context, string) error { return nil }, want: "input argument must be []byte, not string"},
		{name: "struct input", handler: func(struct{}) error { return nil }, want: "must be a context.Context or []byte"},
		{name: "ctx second", handler: func([]byte, context.Context) error { return nil }, want: "first must be a context.Context"},
		{name: "three args", handler: func(context.Context, []byte, int) error { return nil }, want: "takes 3 arguments"},
		{name: "variadic", handler: func(...[]byte) error { return nil }, want: "variadic"},
		{name: "single non-error result", handler: func() []byte { return nil }, want: "single result must be an error"},
		{name: "string output", handler: func() (string, error) { return "", nil }, want: "output must be []byte, not string"},
		{name: "second result not error", handler: func() ([]byte, int) { return nil, 0 }, want: "second result must be an error"},
		{name: "three results", handler: func() ([]byte, []byte, error) { return nil, nil, nil }, want: "returns 3 results"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := wrap(tc.handler)
			require.ErrorIs(t, err, ErrInvalidHandler)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestPanicBecomesError(t *testing.T) {
	t.Parallel()
	h, err := wrap(func(in []byte) ([]byte, error) { panic("bad input") })
	require.NoError(t, err)
	_, _, err = invoke(t, h, newFakeEnv(), "x")
	var pe *call.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "bad input", pe.Value)
	assert.Contains(t, string(pe.Stack), "function_test.go")
}

func TestFunctionContext(t *testing.T) {
	t.Parallel()
	env := newFakeEnv()
	var got map[string]any
	h, err := wrap(func(ctx context.Context, in []byte) ([]byte, error) {
		fc, ok := FromContext(ctx)
		if !ok {
			return nil, errors.New("no function context")
		}
		got = map[string]any{
			"instance": fc.GetInstanceID(), "inputs": fc.GetInputTopics(), "output": fc.GetOutputTopic(),
			"tn": fc.GetTenantAndNamespace(), "tnn": fc.GetTenantAndNamespaceAndName(),
			"tenant": fc.GetFuncTenant(), "ns": fc.GetFuncNamespace(), "name": fc.GetFuncName(),
			"id": fc.GetFuncID(), "version": fc.GetFuncVersion(), "port": fc.GetPort(),
			"cluster": fc.GetClusterName(), "metricsPort": fc.GetMetricsPort(),
			"hc": fc.GetExpectedHealthCheckInterval(), "hcd": fc.GetExpectedHealthCheckIntervalAsDuration().String(),
			"word": fc.GetUserConfValue("word"), "conf": fc.GetUserConfMap(),
			"key": fc.InputKey(), "props": fc.InputProperties(), "record": string(fc.GetCurrentRecord().Payload()),
			"ackErr": fc.Ack(),
		}
		fc.RecordMetric("hits", 1)
		if err := Emit(ctx, []byte("first")); err != nil {
			return nil, err
		}
		return in, fc.EmitOutput(ctx, Output{Payload: []byte("second"), Key: "k2"})
	})
	require.NoError(t, err)
	out, emitted, err := invoke(t, h, env, "payload")
	require.NoError(t, err)
	assert.Equal(t, "payload", string(out))
	assert.Equal(t, []string{"first", "second"}, emitted)
	assert.Equal(t, []float64{1}, env.metrics["hits"])
	assert.Equal(t, map[string]any{
		"instance": 3, "inputs": []string{"in-a", "in-b"}, "output": "out",
		"tn": "public/default", "tnn": "public/default/fn",
		"tenant": "public", "ns": "default", "name": "fn",
		"id": "id-1", "version": "v-1", "port": 9093, "cluster": "standalone", "metricsPort": 9094,
		"hc": int32(30), "hcd": "30s",
		"word": "pulsar", "conf": map[string]any{"word": "pulsar", "n": 2.0},
		"key": "k1", "props": map[string]string{"p": "v"}, "record": "payload",
		"ackErr": ErrNotManual,
	}, got)
}

func TestEmitOutsideInvocation(t *testing.T) {
	t.Parallel()
	require.Error(t, Emit(context.Background(), []byte("x")))
	_, ok := FromContext(context.Background())
	assert.False(t, ok)
}
