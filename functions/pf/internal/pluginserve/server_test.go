package pluginserve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
	"github.com/fnhost/fnhost/functions/pf/internal/pluginserve"
	"github.com/fnhost/fnhost/functions/pf/plugin"
	"github.com/fnhost/fnhost/functions/pf/plugin/pluginpb"
)

// wait bounds every wait of these tests.
const wait = 10 * time.Second

// grpcPipeline makes these tests invoke over the gRPC Pipeline stream rather than the data
// socket; TestGRPCPipeline sets it for a second run of the package's tests.
var grpcPipeline = os.Getenv("FNHOST_TEST_GRPC_PIPELINE") == "1"

// TestGRPCPipeline runs every other test of the package again, in a child process of this test
// binary, with the invocations on the gRPC stream: the path of plugins that offer no data
// socket (and of every plugin off Linux).
func TestGRPCPipeline(t *testing.T) {
	if grpcPipeline {
		t.Skip("this is the gRPC run")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^Test", "-test.skip=^TestGRPCPipeline$", "-test.count=1", "-test.timeout=4m")
	cmd.Env = append(os.Environ(), "FNHOST_TEST_GRPC_PIPELINE=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "the tests over the gRPC pipeline:\n%s", out)
}

// pair is a plugin Server and a host Client connected in process by go-plugin's test helper.
type pair struct {
	client *plugin.Client
	server *pluginserve.Server
	conn   *goplugin.GRPCClient
	logs   *syncBuffer
}

// newPair serves h and returns a configured Client talking to it; cleanup closes both.
func newPair(tb testing.TB, h call.Handler, cfg plugin.Config) *pair {
	tb.Helper()
	p := newUnconfigured(tb, h)
	if cfg.Info.Name == "" {
		cfg.Info.Name = "test"
	}
	cfg.GRPCPipeline = grpcPipeline
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(tb, p.client.Configure(ctx, cfg))
	require.Equal(tb, !grpcPipeline, p.client.DataSocket(), "invocations over the data socket")
	return p
}

func newUnconfigured(tb testing.TB, h call.Handler) *pair {
	tb.Helper()
	logs := &syncBuffer{}
	srv := pluginserve.New(h, logs)
	gc, gs := goplugin.TestPluginGRPCConn(tb, false, plugin.PluginSet(srv))
	raw, err := gc.Dispense(plugin.Name)
	require.NoError(tb, err)
	c, ok := raw.(*plugin.Client)
	require.True(tb, ok, "dispensed %T", raw)
	tb.Cleanup(func() {
		assert.NoError(tb, c.Close())
		// go-plugin's shutdown stops the server (calling gs.Stop as well would race in
		// go-plugin).
		assert.NoError(tb, gc.Close())
		select {
		case <-gs.DoneCh:
		case <-time.After(wait):
			tb.Error("the plugin server did not stop")
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		assert.NoError(tb, srv.Close(ctx))
	})
	return &pair{client: c, server: srv, conn: gc, logs: logs}
}

// invoke runs one invocation and returns its events.
func (p *pair) invoke(ctx context.Context, req *plugin.Request) ([]plugin.Event, plugin.Result, error) {
	var evs []plugin.Event
	var lastSeen bool
	res, err := p.client.Invoke(ctx, req, func(e plugin.Event) error {
		if lastSeen {
			return errors.New("an event after the output marked Last")
		}
		// Last marks the returned output when the transport tells it apart (the pipelines
		// carry it inside Done); the events are compared without it.
		lastSeen, e.Last = e.Last, false
		evs = append(evs, e)
		return nil
	})
	return evs, res, err
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func payloads(evs []plugin.Event) []string {
	var out []string
	for _, e := range evs {
		if e.Kind == plugin.EventOutput {
			out = append(out, string(e.Output.Payload))
		}
	}
	return out
}

func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	tb.Cleanup(cancel)
	return ctx
}

func TestInvoke(t *testing.T) {
	t.Parallel()
	eventTime := time.Date(2024, 5, 6, 7, 8, 9, 10, time.UTC)
	tests := []struct {
		name    string
		h       call.Handler
		info    plugin.Info
		req     plugin.Request
		timeout time.Duration // sets req.Deadline when the case runs
		want    []plugin.Event
		kind    plugin.Kind
		errText string
	}{
		{
			name: "echo",
			h: func(_ context.Context, _ call.Env, inv *call.Invocation) ([]byte, error) {
				return inv.Message.Payload(), nil
			},
			req:  plugin.Request{Payload: []byte("hello")},
			want: []plugin.Event{{Kind: plugin.EventOutput, Output: plugin.Output{Payload: []byte("hello")}}},
		},
		{
			name: "upper",
			h: func(_ context.Context, _ call.Env, inv *call.Invocation) ([]byte, error) {
				return bytes.ToUpper(inv.Message.Payload()), nil
			},
			req:  plugin.Request{Payload: []byte("hello")},
			want: []plugin.Event{{Kind: plugin.EventOutput, Output: plugin.Output{Payload: []byte("HELLO")}}},
		},
		{
			name: "no output",
			h:    func(context.Context, call.Env, *call.Invocation) ([]byte, error) { return nil, nil },
			want: nil,
		},
		{
			name: "emit three then return",
			h: func(ctx context.Context, _ call.Env, inv *call.Invocation) ([]byte, error) {
				for i := range 3 {
					if err := inv.Emit(ctx, call.Output{Payload: fmt.Appendf(nil, "part %d", i)}); err != nil {
						return nil, err
					}
				}
				return []byte("last"), nil
			},
			want: []plugin.Event{
				{Kind: plugin.EventOutput, Output: plugin.Output{Payload: []byte("part 0")}},
				{Kind: plugin.EventOutput, Output: plugin.Output{Payload: []byte("part 1")}},
				{Kind: plugin.EventOutput, Output: plugin.Output{Payload: []byte("part 2")}},
				{Kind: plugin.EventOutput, Output: plugin.Output{Payload: []byte("last")}},
			},
		},
		{
			name: "emit with key, properties and event time",
			h: func(ctx context.Context, _ call.Env, inv *call.Invocation) ([]byte, error) {
				return nil, inv.Emit(ctx, call.Output{Payload: []byte("x"), Key: "k2", Properties: map[string]string{"a": "b"}, EventTime: eventTime})
			},
			want: []plugin.Event{{Kind: plugin.EventOutput, Output: plugin.Output{
				Payload: []byte("x"), Key: "k2", Properties: map[string]string{"a": "b"}, EventTime: eventTime.Local(),
			}}},
		},
		{
			name: "user error",
			h: func(context.Context, call.Env, *call.Invocation) ([]byte, error) {
				return nil, errors.New("bad input")
			},
			kind:    plugin.KindUser,
			errText: "bad input",
		},
		{
			name: "emitted outputs before an error are delivered",
			h: func(ctx context.Context, _ call.Env, inv *call.Invocation) ([]byte, error) {
				if err := inv.Emit(ctx, call.Output{Payload: []byte("partial")}); err != nil {
					return nil, err
				}
				return []byte("dropped"), errors.New("half way")
			},
			want:    []plugin.Event{{Kind: plugin.EventOutput, Output: plugin.Output{Payload: []byte("partial")}}},
			kind:    plugin.KindUser,
			errText: "half way",
		},
		{
			name: "panic",
			h: func(context.Context, call.Env, *call.Invocation) ([]byte, error) {
				panic("boom")
			},
			kind:    plugin.KindPanic,
			errText: "function panicked: boom",
		},
		{
			name: "metric",
			h: func(_ context.Context, env call.Env, _ *call.Invocation) ([]byte, error) {
				env.RecordMetric("latency", 1.5)
				return []byte("ok"), nil
			},
			want: []plugin.Event{
				{Kind: plugin.EventMetric, Metric: plugin.Metric{Name: "latency", Value: 1.5}},
				{Kind: plugin.EventOutput, Output: plugin.Output{Payload: []byte("ok")}},
			},
		},
		{
			name: "manual ack",
			info: plugin.Info{ManualAck: true},
			h: func(_ context.Context, _ call.Env, inv *call.Invocation) ([]byte, error) {
				if inv.Ack == nil {
					return nil, errors.New("no Ack in MANUAL mode")
				}
				return nil, inv.Ack()
			},
			want: []plugin.Event{{Kind: plugin.EventAck}},
		},
		{
			name: "no ack unless manual",
			h: func(_ context.Context, _ call.Env, inv *call.Invocation) ([]byte, error) {
				if inv.Ack != nil {
					return nil, errors.New("Ack set without MANUAL")
				}
				return nil, nil
			},
		},
		{
			name: "info and user config",
			info: plugin.Info{
				Tenant: "t", Namespace: "ns", Name: "fn", InstanceID: 3, InputTopics: []string{"in"},
				OutputTopic: "out", LogTopic: "log", UserConfig: map[string]any{"greeting": "hi", "n": 2},
			},
			h: func(_ context.Context, env call.Env, _ *call.Invocation) ([]byte, error) {
				i := env.Info()
				return fmt.Appendf(nil, "%s %d %v %s %s %v %v", i.FQFN(), i.InstanceID, i.InputTopics, i.OutputTopic, i.LogTopic, i.UserConfig["greeting"], i.UserConfig["n"]), nil
			},
			want: []plugin.Event{{Kind: plugin.EventOutput, Output: plugin.Output{Payload: []byte("t/ns/fn 3 [in] out log hi 2")}}},
		},
		{
			name: "input record",
			req: plugin.Request{
				Payload: []byte("p"), Key: "k", OrderingKey: "ok", Properties: map[string]string{"x": "y"},
				Topic: "persistent://public/default/in", ProducerName: "prod",
				MessageID: pulsar.NewMessageID(1, 2, 3, 4).Serialize(), EventTime: eventTime,
				PublishTime: eventTime.Add(time.Second), RedeliveryCount: 2,
			},
			h: func(_ context.Context, _ call.Env, inv *call.Invocation) ([]byte, error) {
				m := inv.Message
				return json.Marshal(map[string]any{
					"payload": string(m.Payload()), "key": m.Key(), "ordering_key": m.OrderingKey(),
					"properties": m.Properties(), "topic": m.Topic(), "producer": m.ProducerName(),
					"id": m.ID().String(), "event": m.EventTime().UTC(), "publish": m.PublishTime().UTC(),
					"redeliveries": m.RedeliveryCount(),
				})
			},
			want: []plugin.Event{{Kind: plugin.EventOutput, Output: plugin.Output{Payload: mustJSON(t, map[string]any{
				"payload": "p", "key": "k", "ordering_key": "ok", "properties": map[string]string{"x": "y"},
				"topic": "persistent://public/default/in", "producer": "prod",
				"id": pulsar.NewMessageID(1, 2, 3, 4).String(), "event": eventTime, "publish": eventTime.Add(time.Second),
				"redeliveries": 2,
			})}}},
		},
		{
			name: "deadline already passed: not run",
			req:  plugin.Request{Deadline: time.Now().Add(-time.Second)},
			h: func(context.Context, call.Env, *call.Invocation) ([]byte, error) {
				return []byte("ran"), nil
			},
			kind:    plugin.KindDeadline,
			errText: call.ErrDeadline.Error(),
		},
		{
			name:    "deadline hit while running cancels the function's ctx",
			timeout: 50 * time.Millisecond,
			h: func(ctx context.Context, _ call.Env, _ *call.Invocation) ([]byte, error) {
				<-ctx.Done()
				if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return nil, fmt.Errorf("ctx ended with %v", ctx.Err())
				}
				return nil, ctx.Err()
			},
			kind:    plugin.KindDeadline,
			errText: context.DeadlineExceeded.Error(),
		},
		{
			name: "NewOutputMessage without a Pulsar URL",
			h: func(_ context.Context, env call.Env, _ *call.Invocation) ([]byte, error) {
				_, err := env.Producer("out")
				return nil, err
			},
			kind:    plugin.KindUser,
			errText: "NewOutputMessage needs a Pulsar URL; the host runs embedded",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newPair(t, tc.h, plugin.Config{Info: tc.info})
			if tc.timeout != 0 {
				tc.req.Deadline = time.Now().Add(tc.timeout)
			}
			evs, res, err := p.invoke(testCtx(t), &tc.req)
			require.NoError(t, err)
			assert.Equal(t, tc.want, evs)
			assert.Equal(t, tc.kind, res.Kind, "result: %+v", res)
			assert.Equal(t, tc.errText, res.Error)
			assert.Equal(t, len(payloads(tc.want)), res.Outputs)
			if tc.kind == plugin.KindNone {
				assert.NoError(t, res.Err())
			} else {
				var fe *plugin.FunctionError
				require.ErrorAs(t, res.Err(), &fe)
				assert.Equal(t, tc.kind, fe.Kind)
			}
		})
	}
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	require.NoError(tb, err)
	return b
}

func TestPanicKeepsServing(t *testing.T) {
	t.Parallel()
	p := newPair(t, func(_ context.Context, _ call.Env, inv *call.Invocation) ([]byte, error) {
		if string(inv.Message.Payload()) == "panic" {
			panic("boom")
		}
		return inv.Message.Payload(), nil
	}, plugin.Config{})
	ctx := testCtx(t)
	_, res, err := p.invoke(ctx, &plugin.Request{Payload: []byte("panic")})
	require.NoError(t, err)
	assert.Equal(t, plugin.KindPanic, res.Kind)
	assert.Contains(t, res.Error, "boom")
	assert.Contains(t, res.Stack, "goroutine")

	evs, res, err := p.invoke(ctx, &plugin.Request{Payload: []byte("after")})
	require.NoError(t, err)
	assert.Equal(t, plugin.KindNone, res.Kind)
	assert.Equal(t, []string{"after"}, payloads(evs))
}

func TestDeadlineNotRun(t *testing.T) {
	t.Parallel()
	var ran atomic.Bool
	p := newPair(t, func(context.Context, call.Env, *call.Invocation) ([]byte, error) {
		ran.Store(true)
		return nil, nil
	}, plugin.Config{})
	_, res, err := p.invoke(testCtx(t), &plugin.Request{Deadline: time.Now().Add(-time.Minute)})
	require.NoError(t, err)
	assert.Equal(t, plugin.KindDeadline, res.Kind)
	assert.False(t, ran.Load(), "the function ran past its deadline")
}

func TestDeadlineFromCtx(t *testing.T) {
	t.Parallel()
	deadlines := make(chan time.Time, 1)
	p := newPair(t, func(ctx context.Context, _ call.Env, _ *call.Invocation) ([]byte, error) {
		d, _ := ctx.Deadline()
		deadlines <- d
		return nil, nil
	}, plugin.Config{})
	want := time.Now().Add(time.Hour)
	ctx, cancel := context.WithDeadline(context.Background(), want)
	defer cancel()
	_, res, err := p.invoke(ctx, &plugin.Request{})
	require.NoError(t, err)
	require.Equal(t, plugin.KindNone, res.Kind)
	assert.WithinDuration(t, want, <-deadlines, time.Microsecond)
}

func TestUnaryInvoke(t *testing.T) {
	t.Parallel()
	p := newPair(t, func(ctx context.Context, env call.Env, inv *call.Invocation) ([]byte, error) {
		if err := inv.Emit(ctx, call.Output{Payload: []byte("one")}); err != nil {
			return nil, err
		}
		env.RecordMetric("m", 1)
		return []byte("two"), nil
	}, plugin.Config{})
	stream, err := pluginpb.NewFunctionClient(p.conn.Conn).Invoke(testCtx(t), &pluginpb.InvokeRequest{Payload: []byte("x")})
	require.NoError(t, err)
	var got []string
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		switch x := ev.GetEvent().(type) {
		case *pluginpb.Event_Output:
			got = append(got, "output "+string(x.Output.GetPayload()))
		case *pluginpb.Event_Metric:
			got = append(got, "metric "+x.Metric.GetName())
		case *pluginpb.Event_Done:
			got = append(got, "done "+x.Done.GetKind().String())
		}
	}
	assert.Equal(t, []string{"output one", "metric m", "output two", "done ERROR_KIND_NONE"}, got)
}

func TestConcurrentPipelined(t *testing.T) {
	t.Parallel()
	p := newPair(t, func(ctx context.Context, _ call.Env, inv *call.Invocation) ([]byte, error) {
		// Two outputs each, so that events of different invocations interleave.
		if err := inv.Emit(ctx, call.Output{Payload: append([]byte("a-"), inv.Message.Payload()...)}); err != nil {
			return nil, err
		}
		return append([]byte("b-"), inv.Message.Payload()...), nil
	}, plugin.Config{MaxInFlight: 64})
	ctx := testCtx(t)
	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			in := fmt.Sprint(i)
			evs, res, err := p.invoke(ctx, &plugin.Request{Payload: []byte(in)})
			switch {
			case err != nil:
				errs <- fmt.Errorf("invocation %d: %w", i, err)
			case res.Kind != plugin.KindNone:
				errs <- fmt.Errorf("invocation %d: %+v", i, res)
			default:
				if got, want := strings.Join(payloads(evs), ","), "a-"+in+",b-"+in; got != want {
					errs <- fmt.Errorf("invocation %d: got %q, want %q", i, got, want)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	h, err := p.client.Health(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(n), h.Served)
	assert.Equal(t, 0, h.InFlight)
}

func TestBackpressure(t *testing.T) {
	t.Parallel()
	const max = 2
	var running, peak atomic.Int32
	started := make(chan struct{}, 10)
	release := make(chan struct{})
	p := newPair(t, func(context.Context, call.Env, *call.Invocation) ([]byte, error) {
		n := running.Add(1)
		for {
			m := peak.Load()
			if n <= m || peak.CompareAndSwap(m, n) {
				break
			}
		}
		started <- struct{}{}
		<-release
		running.Add(-1)
		return []byte("ok"), nil
	}, plugin.Config{MaxInFlight: max})
	require.Equal(t, max, p.client.MaxInFlight())
	ctx := testCtx(t)

	const n = 6
	var wg sync.WaitGroup
	results := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, res, err := p.invoke(ctx, &plugin.Request{})
			if err == nil {
				err = res.Err()
			}
			results <- err
		})
	}
	for range max {
		select {
		case <-started:
		case <-ctx.Done():
			t.Fatal("the first invocations did not start")
		}
	}
	// Full: one more waits for a slot, and gives up with its ctx.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, _, err := p.invoke(short, &plugin.Request{})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "waiting for an invocation slot")
	h, err := p.client.Health(ctx)
	require.NoError(t, err)
	assert.Equal(t, max, h.InFlight)
	assert.Equal(t, max, h.MaxInFlight)

	close(release)
	wg.Wait()
	close(results)
	for err := range results {
		assert.NoError(t, err)
	}
	assert.Equal(t, int32(max), peak.Load(), "concurrency in the plugin")
}

func TestCancel(t *testing.T) {
	t.Parallel()
	cancelled := make(chan error, 1)
	started := make(chan struct{})
	p := newPair(t, func(ctx context.Context, _ call.Env, _ *call.Invocation) ([]byte, error) {
		close(started)
		<-ctx.Done()
		cancelled <- ctx.Err()
		return nil, ctx.Err()
	}, plugin.Config{})
	ctx, cancel := context.WithCancel(testCtx(t))
	errc := make(chan error, 1)
	go func() {
		_, _, err := p.invoke(ctx, &plugin.Request{})
		errc <- err
	}()
	waitFor(t, started)
	cancel()
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(wait):
		t.Fatal("Invoke did not return after its ctx was cancelled")
	}
	select {
	case err := <-cancelled:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(wait):
		t.Fatal("the function's ctx was not cancelled")
	}
	// The slot comes back once the plugin reports Done.
	require.NoError(t, p.client.Drain(testCtx(t)))
}

func TestCallbackError(t *testing.T) {
	t.Parallel()
	cancelled := make(chan struct{})
	p := newPair(t, func(ctx context.Context, _ call.Env, inv *call.Invocation) ([]byte, error) {
		for {
			if err := inv.Emit(ctx, call.Output{Payload: []byte("x")}); err != nil {
				close(cancelled)
				return nil, err
			}
		}
	}, plugin.Config{})
	stop := errors.New("enough")
	_, err := p.client.Invoke(testCtx(t), &plugin.Request{}, func(plugin.Event) error { return stop })
	require.ErrorIs(t, err, stop)
	waitFor(t, cancelled)
}

// TestCallbackErrorOnReturnedOutput: the returned output travels inside Done on the pipeline;
// an error from the callback for it is still Invoke's error, and the client stays usable.
func TestCallbackErrorOnReturnedOutput(t *testing.T) {
	t.Parallel()
	p := newPair(t, echo, plugin.Config{})
	stop := errors.New("enough")
	_, err := p.client.Invoke(testCtx(t), &plugin.Request{Payload: []byte("x")}, func(plugin.Event) error { return stop })
	require.ErrorIs(t, err, stop)
	var got []string
	res, err := p.client.Invoke(testCtx(t), &plugin.Request{Payload: []byte("y")}, func(e plugin.Event) error {
		got = append(got, string(e.Output.Payload))
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 1, res.Outputs)
	require.Equal(t, []string{"y"}, got)
}

func TestDrain(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	release := make(chan struct{})
	p := newPair(t, func(context.Context, call.Env, *call.Invocation) ([]byte, error) {
		close(started)
		<-release
		return []byte("finished"), nil
	}, plugin.Config{})
	ctx := testCtx(t)
	type outcome struct {
		evs []plugin.Event
		res plugin.Result
		err error
	}
	first := make(chan outcome, 1)
	go func() {
		evs, res, err := p.invoke(ctx, &plugin.Request{})
		first <- outcome{evs, res, err}
	}()
	waitFor(t, started)

	drained := make(chan error, 1)
	go func() { drained <- p.client.Drain(ctx) }()
	require.Eventually(t, func() bool {
		h, err := p.client.Health(ctx)
		return err == nil && !h.Serving
	}, wait, time.Millisecond, "the plugin did not start draining")
	_, _, err := p.invoke(ctx, &plugin.Request{})
	require.ErrorIs(t, err, plugin.ErrDraining)
	select {
	case err := <-drained:
		t.Fatalf("Drain returned with an invocation in flight: %v", err)
	default:
	}

	close(release)
	select {
	case err := <-drained:
		require.NoError(t, err)
	case <-time.After(wait):
		t.Fatal("Drain did not return")
	}
	o := <-first
	require.NoError(t, o.err)
	assert.Equal(t, []string{"finished"}, payloads(o.evs))
}

func TestDrainBoundedByCtx(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	release := make(chan struct{})
	p := newPair(t, func(context.Context, call.Env, *call.Invocation) ([]byte, error) {
		close(started)
		<-release
		return nil, nil
	}, plugin.Config{})
	t.Cleanup(func() { close(release) })
	ctx := testCtx(t)
	go func() { _, _, _ = p.invoke(ctx, &plugin.Request{}) }() // outcome irrelevant here
	waitFor(t, started)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	err := p.client.Drain(short)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestConfigure(t *testing.T) {
	t.Parallel()
	h := func(context.Context, call.Env, *call.Invocation) ([]byte, error) { return nil, nil }

	t.Run("invoke before configure", func(t *testing.T) {
		t.Parallel()
		p := newUnconfigured(t, h)
		_, _, err := p.invoke(testCtx(t), &plugin.Request{})
		require.ErrorIs(t, err, plugin.ErrNotConfigured)
		hs, err := p.client.Health(testCtx(t))
		require.NoError(t, err)
		assert.False(t, hs.Serving)
	})
	t.Run("unary invoke before configure", func(t *testing.T) {
		t.Parallel()
		p := newUnconfigured(t, h)
		stream, err := pluginpb.NewFunctionClient(p.conn.Conn).Invoke(testCtx(t), &pluginpb.InvokeRequest{})
		require.NoError(t, err)
		_, err = stream.Recv()
		assert.Equal(t, codes.FailedPrecondition, status.Code(err))
	})
	t.Run("twice", func(t *testing.T) {
		t.Parallel()
		p := newPair(t, h, plugin.Config{})
		err := p.client.Configure(testCtx(t), plugin.Config{Info: plugin.Info{Name: "again"}})
		require.Error(t, err)
		_, err = pluginpb.NewFunctionClient(p.conn.Conn).Configure(testCtx(t), &pluginpb.ConfigureRequest{Info: &pluginpb.Info{Name: "again"}})
		assert.Equal(t, codes.FailedPrecondition, status.Code(err))
	})
	for _, tc := range []struct {
		name string
		req  *pluginpb.ConfigureRequest
	}{
		{"no name", &pluginpb.ConfigureRequest{Info: &pluginpb.Info{}}},
		{"user config not an object", &pluginpb.ConfigureRequest{Info: &pluginpb.Info{Name: "f", UserConfigJson: "[1]"}}},
		{"negative max in flight", &pluginpb.ConfigureRequest{Info: &pluginpb.Info{Name: "f"}, MaxInFlight: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newUnconfigured(t, h)
			_, err := pluginpb.NewFunctionClient(p.conn.Conn).Configure(testCtx(t), tc.req)
			assert.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
		})
	}
	t.Run("host checks", func(t *testing.T) {
		t.Parallel()
		p := newUnconfigured(t, h)
		require.Error(t, p.client.Configure(testCtx(t), plugin.Config{}), "no name")
		require.Error(t, p.client.Configure(testCtx(t), plugin.Config{Info: plugin.Info{Name: "f"}, MaxInFlight: -1}))
		require.Error(t, p.client.Configure(testCtx(t), plugin.Config{Info: plugin.Info{Name: "f", UserConfig: map[string]any{"f": func() {}}}}))
	})
}

func TestClosedClient(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	p := newPair(t, func(ctx context.Context, _ call.Env, _ *call.Invocation) ([]byte, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	}, plugin.Config{})
	errc := make(chan error, 1)
	go func() {
		_, _, err := p.invoke(testCtx(t), &plugin.Request{})
		errc <- err
	}()
	waitFor(t, started)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { assert.NoError(t, p.client.Close()) })
	}
	wg.Wait()
	select {
	case err := <-errc:
		require.ErrorIs(t, err, plugin.ErrClosed)
	case <-time.After(wait):
		t.Fatal("Invoke in flight did not return after Close")
	}
	_, _, err := p.invoke(testCtx(t), &plugin.Request{})
	require.ErrorIs(t, err, plugin.ErrClosed)
}

func TestServerStopFailsInFlight(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	logs := &syncBuffer{}
	srv := pluginserve.New(func(ctx context.Context, _ call.Env, _ *call.Invocation) ([]byte, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	}, logs)
	gc, gs := goplugin.TestPluginGRPCConn(t, false, plugin.PluginSet(srv))
	raw, err := gc.Dispense(plugin.Name)
	require.NoError(t, err)
	c := raw.(*plugin.Client)
	require.NoError(t, c.Configure(testCtx(t), plugin.Config{Info: plugin.Info{Name: "f"}, GRPCPipeline: grpcPipeline}))
	type outcome struct {
		res plugin.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := c.Invoke(testCtx(t), &plugin.Request{}, func(plugin.Event) error { return nil })
		done <- outcome{res, err}
	}()
	waitFor(t, started)
	// What pluginserve.Serve does when go-plugin shuts it down: the gRPC server stops
	// (connections close, RPCs are cancelled), then Close ends the data socket's pipeline.
	gs.Stop()
	closed := make(chan error, 1)
	go func() { closed <- srv.Close(testCtx(t)) }()
	select {
	case o := <-done:
		if grpcPipeline {
			// The stream is gone with the server: the outcome is unknown to the host.
			require.ErrorIs(t, o.err, plugin.ErrExited)
		} else {
			// The data socket stops taking requests but writes what the cancelled
			// invocation returned before it closes.
			require.NoError(t, o.err)
			assert.Equal(t, plugin.KindCanceled, o.res.Kind, "%v", o.res.Err)
		}
	case <-time.After(wait):
		t.Fatal("Invoke did not return when the server stopped")
	}
	require.NoError(t, <-closed)
	require.NoError(t, c.Close())
	_ = gc.Close() // the server is gone: closing reports it, which is expected here
}

func TestLogFormat(t *testing.T) {
	t.Parallel()
	p := newPair(t, func(ctx context.Context, env call.Env, _ *call.Invocation) ([]byte, error) {
		env.Logger().Warn("from the function", "k", "v", "@message", 42)
		env.Logger().Debug("dropped at info")
		return nil, nil
	}, plugin.Config{Info: plugin.Info{Name: "logger"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	_, _, err := p.invoke(testCtx(t), &plugin.Request{})
	require.NoError(t, err)
	var found map[string]any
	for line := range strings.Lines(p.logs.String()) {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), "not JSON: %s", line)
		assert.NotContains(t, m, "msg")
		assert.NotContains(t, m, "level")
		assert.NotContains(t, m, "time")
		if m["@message"] == "from the function" {
			found = m
		}
		assert.NotEqual(t, "dropped at info", m["@message"])
	}
	require.NotNil(t, found, "logs: %s", p.logs.String())
	assert.Equal(t, "warn", found["@level"])
	assert.Equal(t, "logger", found["function"])
	assert.Equal(t, "v", found["k"])
	assert.Equal(t, float64(42), found["_@message"])
	ts, ok := found["@timestamp"].(string)
	require.True(t, ok)
	_, err = time.Parse("2006-01-02T15:04:05.000000Z07:00", ts)
	assert.NoError(t, err)
}

func TestLogLevelFromHost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		level slog.Level
		want  []string
	}{
		{"debug", slog.LevelDebug, []string{"debug", "info", "warn", "error"}},
		{"warn", slog.LevelWarn, []string{"warn", "error"}},
		{"trace", slog.LevelDebug - 4, []string{"trace", "debug", "info", "warn", "error"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: tc.level}))
			p := newPair(t, func(ctx context.Context, env call.Env, _ *call.Invocation) ([]byte, error) {
				for _, l := range []slog.Level{slog.LevelDebug - 4, slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
					env.Logger().Log(ctx, l, "record")
				}
				return nil, nil
			}, plugin.Config{Logger: logger})
			_, _, err := p.invoke(testCtx(t), &plugin.Request{})
			require.NoError(t, err)
			var got []string
			for line := range strings.Lines(p.logs.String()) {
				var m map[string]any
				require.NoError(t, json.Unmarshal([]byte(line), &m))
				if m["@message"] == "record" {
					got = append(got, m["@level"].(string))
				}
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func waitFor(tb testing.TB, ch <-chan struct{}) {
	tb.Helper()
	select {
	case <-ch:
	case <-time.After(wait):
		tb.Fatal("timed out")
	}
}
