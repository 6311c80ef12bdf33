package enginetest

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/functions/pf/invocation"
	"github.com/fnhost/fnhost/internal/engine"
)

// Settings are a function's settings in Pulsar's terms; each launcher turns them into its own
// configuration (an instance config, a manifest) and that into an engine.Config, as it does
// for real.
type Settings struct {
	// Output is the output topic; empty for none.
	Output    string
	Guarantee engine.Guarantee
	// Order is the subscription type: Strict Failover, KeyOrdered Key_Shared, else Shared.
	Order engine.Order
	// Lanes is the concurrency: fnhost.concurrency, or the host's in-flight bound.
	Lanes   int
	Timeout time.Duration
	// MaxRetries is maxMessageRetries; -1 unset.
	MaxRetries int
	Forward    bool
}

// Launcher is what the suite needs of a launcher.
type Launcher interface {
	// Config returns the engine configuration the launcher derives from s.
	Config(t testing.TB, s Settings) engine.Config
	// Function returns the launcher's Function running Script with s (MANUAL: acks allowed).
	Function(t testing.TB, s Settings) engine.Function
}

const (
	outTopic   = "persistent://public/default/out"
	replyTopic = "persistent://public/default/reply"
)

// bound bounds every wait of the suite.
const bound = 30 * time.Second

// harness is one engine under test.
type harness struct {
	src     *Source
	sink    *Sink
	metrics *engine.Metrics
}

func start(t *testing.T, l Launcher, s Settings, src *Source, sink *Sink) *harness {
	t.Helper()
	cfg := l.Config(t, s)
	if cfg.Metrics == nil {
		cfg.Metrics = engine.NewMetrics(engine.Identity{Tenant: "public", Namespace: "default", Name: "fn", Cluster: "test"}, nil, nil)
	}
	e, err := engine.New(cfg, l.Function(t, s), sink, src)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { assert.NoError(t, e.Run(ctx)) })
	t.Cleanup(func() {
		cancel()
		dctx, dcancel := context.WithTimeout(context.Background(), bound)
		defer dcancel()
		assert.NoError(t, e.Drain(dctx))
		wg.Wait()
		e.Close()
	})
	return &harness{src: src, sink: sink, metrics: cfg.Metrics}
}

func (h *harness) settled(t *testing.T, payloads ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	require.NoError(t, h.src.WaitSettled(ctx, payloads...))
}

// totals sums what every instance counted.
func (h *harness) totals(t *testing.T) engine.Counts {
	t.Helper()
	var c engine.Counts
	for i := 0; ; i++ {
		in := h.metrics.Instance(i)
		if i > 0 && in == h.metrics.Instance(0) {
			return c
		}
		s := in.Snapshot(false).Total
		c.Received += s.Received
		c.Processed += s.Processed
		c.UserExceptions += s.UserExceptions
		c.SystemExceptions += s.SystemExceptions
	}
}

func correlated(id string, extra ...string) map[string]string {
	p := map[string]string{invocation.ID: id, invocation.ReplyTo: replyTopic}
	for i := 0; i+1 < len(extra); i += 2 {
		p[extra[i]] = extra[i+1]
	}
	return p
}

func payloads(msgs []*MessageView) []string {
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, m.Payload)
	}
	return out
}

// MessageView is a sent message, read back.
type MessageView struct {
	Payload string
	Key     string
	Props   map[string]string
	Seq     *int64
}

func view(h *harness, topic string) []*MessageView {
	var out []*MessageView
	for _, m := range h.sink.To(topic) {
		out = append(out, &MessageView{Payload: string(m.Payload), Key: m.Key, Props: m.Properties, Seq: m.SequenceID})
	}
	return out
}

// Run runs the contract suite through l.
func Run(t *testing.T, l Launcher) {
	base := Settings{Output: outTopic, Lanes: 1, MaxRetries: -1}
	with := func(f func(*Settings)) Settings {
		s := base
		f(&s)
		return s
	}

	t.Run("success: output, final reply, ack once", func(t *testing.T) {
		h := start(t, l, base, NewSource(8), NewSink())
		h.src.Add(&Message{Data: []byte("echo:hi"), MsgKey: "k", Props: correlated("inv-1")})
		h.settled(t, "echo:hi")
		out := view(h, outTopic)
		require.Len(t, out, 1)
		assert.Equal(t, "hi", out[0].Payload)
		assert.Equal(t, "k", out[0].Key, "an output keeps its input's key")
		assert.Equal(t, "persistent://public/default/in", out[0].Props[invocation.InputTopic])
		assert.NotEmpty(t, out[0].Props[invocation.InputMessageID])
		replies := view(h, replyTopic)
		require.Len(t, replies, 1, "the returned output is the final reply; no end marker")
		r, ok := invocation.ParseReply(replies[0].Props)
		require.True(t, ok)
		assert.Equal(t, invocation.Reply{ID: "inv-1", Seq: 0, Final: true, Output: true}, r)
		assert.Equal(t, 1, h.src.Acks("echo:hi"))
		assert.Zero(t, h.src.Nacks("echo:hi"))
		assert.Equal(t, engine.Counts{Received: 1, Processed: 1}, h.totals(t))
	})

	t.Run("stream: emitted outputs, then an end marker to reply-to only", func(t *testing.T) {
		h := start(t, l, base, NewSource(8), NewSink())
		h.src.Add(&Message{Data: []byte("emit:a,b"), Props: correlated("inv-2")})
		h.settled(t, "emit:a,b")
		assert.Equal(t, []string{"a", "b"}, payloads(view(h, outTopic)))
		replies := view(h, replyTopic)
		require.Equal(t, []string{"a", "b", ""}, payloads(replies))
		for i, m := range replies {
			r, ok := invocation.ParseReply(m.Props)
			require.True(t, ok)
			assert.Equal(t, int64(i), r.Seq)
			assert.Equal(t, i == 2, r.Final, "only the end marker is final")
			assert.Equal(t, i < 2, r.Output)
		}
	})

	t.Run("caller's deadline passed before the start: not run, timeout reply, acked", func(t *testing.T) {
		h := start(t, l, with(func(s *Settings) { s.MaxRetries = 3 }), NewSource(8), NewSink())
		past := strconv.FormatInt(time.Now().Add(-time.Second).UnixMilli(), 10)
		h.src.Add(&Message{Data: []byte("echo:late"), Props: correlated("inv-3", invocation.Deadline, past)})
		h.settled(t, "echo:late")
		assert.Empty(t, view(h, outTopic), "not run")
		replies := view(h, replyTopic)
		require.Len(t, replies, 1)
		r, _ := invocation.ParseReply(replies[0].Props)
		assert.True(t, r.Final)
		assert.Equal(t, engine.ErrDeadline.Error(), r.Error)
		assert.Equal(t, 1, h.src.Acks("echo:late"))
		assert.Zero(t, h.src.Nacks("echo:late"), "not redelivered")
		assert.Equal(t, engine.Counts{Received: 1, UserExceptions: 1}, h.totals(t))
	})

	t.Run("timeoutMs: a failure counted against retries, then dead-lettered", func(t *testing.T) {
		src := NewSource(8)
		src.MaxDeliveries = 2
		h := start(t, l, with(func(s *Settings) { s.Timeout = 50 * time.Millisecond; s.MaxRetries = 1 }), src, NewSink())
		h.src.Add(&Message{Data: []byte("block"), Props: correlated("inv-4")})
		h.settled(t, "block")
		assert.Equal(t, []string{"block"}, h.src.Dead())
		assert.Equal(t, 2, h.src.Nacks("block"))
		assert.Zero(t, h.src.Acks("block"))
		assert.Equal(t, int64(2), h.totals(t).UserExceptions)
		replies := view(h, replyTopic)
		require.Len(t, replies, 1, "the caller hears once, on the last try")
		r, _ := invocation.ParseReply(replies[0].Props)
		assert.Equal(t, 1, r.Attempt)
		assert.NotEmpty(t, r.Error)
	})

	t.Run("user failure: retried maxMessageRetries times, then dead-lettered", func(t *testing.T) {
		src := NewSource(8)
		src.MaxDeliveries = 3
		h := start(t, l, with(func(s *Settings) { s.MaxRetries = 2 }), src, NewSink())
		h.src.Add(&Message{Data: []byte("fail"), Props: correlated("inv-5")})
		h.settled(t, "fail")
		assert.Equal(t, []string{"fail"}, h.src.Dead())
		assert.Equal(t, 3, h.src.Nacks("fail"))
		assert.Equal(t, engine.Counts{Received: 3, UserExceptions: 3}, h.totals(t))
		replies := view(h, replyTopic)
		require.Len(t, replies, 1)
		r, _ := invocation.ParseReply(replies[0].Props)
		assert.Equal(t, invocation.Reply{ID: "inv-5", Seq: 0, Attempt: 2, Final: true, Error: "boom"}, r)
	})

	t.Run("retry forever (-1): every attempt is reported", func(t *testing.T) {
		src := NewSource(8)
		src.StopAfter = 2
		h := start(t, l, base, src, NewSink())
		h.src.Add(&Message{Data: []byte("panic"), Props: correlated("inv-6")})
		h.settled(t, "panic")
		assert.Empty(t, h.src.Dead())
		assert.Equal(t, 3, h.src.Nacks("panic"))
		assert.Len(t, view(h, replyTopic), 3)
	})

	t.Run("correlation properties are set last and cannot be forged", func(t *testing.T) {
		h := start(t, l, with(func(s *Settings) { s.Forward = true }), NewSource(8), NewSink())
		h.src.Add(&Message{Data: []byte("forge"), MsgKey: "k1", Props: correlated("inv-7", "in", "1")})
		h.src.Add(&Message{Data: []byte("forge"), Props: map[string]string{"in": "2"}})
		h.settled(t, "forge", "forge")
		out := view(h, outTopic)
		require.Len(t, out, 2)
		for _, m := range out {
			assert.Equal(t, "1", m.Props["own"])
			assert.Equal(t, "k2", m.Key)
			assert.Equal(t, "persistent://public/default/in", m.Props[invocation.InputTopic])
			assert.NotEqual(t, "forged", m.Props[invocation.InputMessageID])
			assert.NotContains(t, m.Props, invocation.ReplyTo)
			assert.NotContains(t, m.Props, invocation.Error)
			assert.NotContains(t, m.Props, invocation.Attempt)
			switch m.Props["in"] {
			case "1":
				assert.Equal(t, "inv-7", m.Props[invocation.ID])
				assert.Equal(t, "0", m.Props[invocation.Seq])
				assert.NotContains(t, m.Props, invocation.Final)
			case "2":
				for _, k := range []string{invocation.ID, invocation.Seq, invocation.Final} {
					assert.NotContains(t, m.Props, k, "an uncorrelated output carries no reply properties")
				}
			default:
				t.Errorf("input property not forwarded: %v", m.Props)
			}
		}
	})

	t.Run("ATMOST_ONCE: acked on receipt, never nacked", func(t *testing.T) {
		h := start(t, l, with(func(s *Settings) { s.Guarantee = engine.AtMostOnce; s.MaxRetries = 2 }), NewSource(8), NewSink())
		h.src.Add(&Message{Data: []byte("fail")})
		h.settled(t, "fail")
		assert.Equal(t, 1, h.src.Acks("fail"))
		waitFor(t, func() bool { return h.totals(t).UserExceptions == 1 })
		assert.Zero(t, h.src.Nacks("fail"))
	})

	t.Run("MANUAL: the function acks; a failure after its ack is not nacked", func(t *testing.T) {
		h := start(t, l, with(func(s *Settings) { s.Guarantee = engine.Manual }), NewSource(8), NewSink())
		h.src.Add(&Message{Data: []byte("ack")})
		h.src.Add(&Message{Data: []byte("ackfail")})
		h.settled(t, "ack", "ackfail")
		waitFor(t, func() bool { c := h.totals(t); return c.Processed == 1 && c.UserExceptions == 1 })
		assert.Equal(t, 1, h.src.Acks("ack"))
		assert.Equal(t, 1, h.src.Acks("ackfail"))
		assert.Zero(t, h.src.Nacks("ackfail"))
	})

	t.Run("MANUAL: an input the function did not ack is left alone on success, nacked on failure", func(t *testing.T) {
		src := NewSource(8)
		src.StopAfter = 1
		h := start(t, l, with(func(s *Settings) { s.Guarantee = engine.Manual }), src, NewSink())
		h.src.Add(&Message{Data: []byte("fail")})
		h.src.Add(&Message{Data: []byte("echo:x")})
		h.settled(t, "fail")
		waitFor(t, func() bool { return h.totals(t).Processed == 1 })
		assert.Zero(t, h.src.Acks("echo:x"))
		assert.Zero(t, h.src.Nacks("echo:x"))
	})

	t.Run("outputs not persisted: a system exception, nacked", func(t *testing.T) {
		src := NewSource(8)
		src.StopAfter = 1
		h := start(t, l, base, src, NewSink(outTopic))
		h.src.Add(&Message{Data: []byte("echo:x")})
		h.settled(t, "echo:x")
		assert.Equal(t, 2, h.src.Nacks("echo:x"))
		assert.Zero(t, h.src.Acks("echo:x"))
		assert.Equal(t, int64(2), h.totals(t).SystemExceptions)
	})

	t.Run("reply-to naming the output topic gets each output once", func(t *testing.T) {
		h := start(t, l, base, NewSource(8), NewSink())
		h.src.Add(&Message{Data: []byte("echo:once"), Props: map[string]string{invocation.ID: "inv-8", invocation.ReplyTo: outTopic}})
		h.settled(t, "echo:once")
		out := view(h, outTopic)
		require.Len(t, out, 1)
		assert.Equal(t, "inv-8", out[0].Props[invocation.ID])
	})

	t.Run("no output topic and no reply-to: outputs dropped and counted", func(t *testing.T) {
		h := start(t, l, with(func(s *Settings) { s.Output = "" }), NewSource(8), NewSink())
		h.src.Add(&Message{Data: []byte("echo:x")})
		h.settled(t, "echo:x")
		assert.Equal(t, 1, h.src.Acks("echo:x"))
	})

	t.Run("EFFECTIVELY_ONCE: sequence ids from the input's position; a failure is not redelivered", func(t *testing.T) {
		h := start(t, l, with(func(s *Settings) { s.Guarantee = engine.EffectivelyOnce; s.Order = engine.Strict }), NewSource(8), NewSink())
		h.src.Add(&Message{Data: []byte("emit:a,b"), Props: correlated("inv-9")})
		h.src.Add(&Message{Data: []byte("fail")})
		h.settled(t, "emit:a,b", "fail")
		out := view(h, outTopic)
		require.Len(t, out, 2)
		require.NotNil(t, out[0].Seq)
		require.NotNil(t, out[1].Seq)
		assert.Equal(t, *out[0].Seq+1, *out[1].Seq)
		for _, r := range view(h, replyTopic) {
			assert.Nil(t, r.Seq, "replies carry no sequence id")
		}
		assert.Equal(t, 1, h.src.Acks("fail"))
		assert.Zero(t, h.src.Nacks("fail"))
	})

	for _, order := range []engine.Order{engine.Strict, engine.KeyOrdered} {
		t.Run(fmt.Sprintf("order %d: outputs keep their inputs' order (per key)", order), func(t *testing.T) {
			const n, keys = 200, 5
			h := start(t, l, with(func(s *Settings) { s.Order = order; s.Lanes = 4 }), NewSource(n), NewSink())
			var all []string
			for i := range n {
				p := fmt.Sprintf("echo:%d", i)
				all = append(all, p)
				h.src.Add(&Message{Data: []byte(p), MsgKey: fmt.Sprint("k", i%keys)})
			}
			h.settled(t, all...)
			last := map[string]int{}
			for _, m := range view(h, outTopic) {
				i, err := strconv.Atoi(m.Payload)
				require.NoError(t, err)
				if prev, ok := last[m.Key]; ok {
					assert.Greater(t, i, prev, "key %s", m.Key)
				}
				last[m.Key] = i
			}
			assert.Len(t, last, keys)
		})
	}

	t.Run("metrics: Pulsar Functions' families", func(t *testing.T) {
		h := start(t, l, base, NewSource(8), NewSink())
		h.src.Add(&Message{Data: []byte("echo:x")})
		h.settled(t, "echo:x")
		waitFor(t, func() bool { return h.totals(t).Processed == 1 })
		reg := prometheus.NewRegistry()
		require.NoError(t, reg.Register(h.metrics))
		families, err := reg.Gather()
		require.NoError(t, err)
		got := map[string]bool{}
		for _, f := range families {
			got[f.GetName()] = true
		}
		for _, name := range []string{
			"pulsar_function_received_total", "pulsar_function_processed_successfully_total",
			"pulsar_function_user_exceptions_total", "pulsar_function_system_exceptions_total",
			"pulsar_function_process_latency_ms", "pulsar_function_last_invocation",
			"pulsar_function_received_total_1min", "pulsar_function_processed_successfully_total_1min",
			"pulsar_function_user_exceptions_total_1min", "pulsar_function_system_exceptions_total_1min",
			"pulsar_function_process_latency_ms_1min", "fnhost_invocations_in_flight",
			"fnhost_retries_exhausted_total", "fnhost_outputs_dropped_total",
		} {
			assert.True(t, got[name], "family %s", name)
		}
	})
}

// waitFor polls cond until it holds, or fails after bound: for counts settled after the ack.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		<-tick.C
	}
}
