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

// Broker is the world an engine under test lives in: its source, its sink, and what the
// test reads back. The fakes (NewFakeBus) and a real standalone (NewPulsarBus) provide one.
type Broker interface {
	// Topics are the input, output and reply-to topics.
	Topics() (in, out, reply string)
	Source() engine.Source
	Sink() engine.Sink
	// Add publishes an input.
	Add(t testing.TB, m *Message)
	Acks(payload string) int
	Nacks(payload string) int
	// Dead returns the payloads in the dead letters.
	Dead(t testing.TB) []string
	// WaitSettled waits until each payload was settled for good: acked, dead-lettered, or
	// nacked past StopAfter.
	WaitSettled(ctx context.Context, payloads ...string) error
	// Sent returns what reached topic, in order.
	Sent(t testing.TB, topic string) []*MessageView
	// SequenceIDs reports whether Sent sees the producers' sequence ids.
	SequenceIDs() bool
}

// BrokerOptions shape a Broker for one test.
type BrokerOptions struct {
	// Capacity bounds the inputs in flight in a fake.
	Capacity int
	// MaxDeliveries is the dead-letter policy's bound; 0 redelivers forever.
	MaxDeliveries int
	// StopAfter bounds the redeliveries a test lets happen (0: none): a nack past it is
	// recorded, and the input is not redelivered, so that "retry forever" ends.
	StopAfter int
	// FailOutput makes every send to the output topic fail.
	FailOutput bool
}

// Bus makes a Broker per test.
type Bus func(t *testing.T, o BrokerOptions) Broker

// bound bounds every wait of the suite.
const bound = 60 * time.Second

// harness is one engine under test.
type harness struct {
	Broker
	in, out, reply string
	metrics        *engine.Metrics
}

func start(t *testing.T, l Launcher, bus Bus, s Settings, o BrokerOptions) *harness {
	t.Helper()
	if o.Capacity == 0 {
		o.Capacity = 8
	}
	b := bus(t, o)
	h := &harness{Broker: b}
	h.in, h.out, h.reply = b.Topics()
	if s.Output != "" {
		s.Output = h.out
	}
	cfg := l.Config(t, s)
	if cfg.Metrics == nil {
		cfg.Metrics = engine.NewMetrics(engine.Identity{Tenant: "public", Namespace: "default", Name: "fn", Cluster: "test"}, nil, nil)
	}
	h.metrics = cfg.Metrics
	e, err := engine.New(cfg, l.Function(t, s), b.Sink(), b.Source())
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
	return h
}

func (h *harness) settled(t *testing.T, payloads ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	require.NoError(t, h.WaitSettled(ctx, payloads...))
}

func (h *harness) add(t *testing.T, m *Message) { h.Add(t, m) }

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

// correlated are the properties of an input from the trigger: id, the harness's reply-to and
// extra name/value pairs.
func (h *harness) correlated(id string, extra ...string) map[string]string {
	p := map[string]string{invocation.ID: id, invocation.ReplyTo: h.reply}
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

func view(t *testing.T, h *harness, topic string) []*MessageView { return h.Sent(t, topic) }

// Run runs the contract suite through l.
func Run(t *testing.T, l Launcher, bus Bus) {
	base := Settings{Output: "out", Lanes: 1, MaxRetries: -1}
	with := func(f func(*Settings)) Settings {
		s := base
		f(&s)
		return s
	}

	t.Run("success: output, final reply, ack once", func(t *testing.T) {
		h := start(t, l, bus, base, BrokerOptions{})
		h.add(t, &Message{Data: []byte("echo:hi"), MsgKey: "k", Props: h.correlated("inv-1")})
		h.settled(t, "echo:hi")
		out := view(t, h, h.out)
		require.Len(t, out, 1)
		assert.Equal(t, "hi", out[0].Payload)
		assert.Equal(t, "k", out[0].Key, "an output keeps its input's key")
		assert.Equal(t, h.in, out[0].Props[invocation.InputTopic])
		assert.NotEmpty(t, out[0].Props[invocation.InputMessageID])
		replies := view(t, h, h.reply)
		require.Len(t, replies, 1, "the returned output is the final reply; no end marker")
		r, ok := invocation.ParseReply(replies[0].Props)
		require.True(t, ok)
		assert.Equal(t, invocation.Reply{ID: "inv-1", Seq: 0, Final: true, Output: true}, r)
		assert.Equal(t, 1, h.Acks("echo:hi"))
		assert.Zero(t, h.Nacks("echo:hi"))
		assert.Equal(t, engine.Counts{Received: 1, Processed: 1}, h.totals(t))
	})

	t.Run("stream: emitted outputs, then an end marker to reply-to only", func(t *testing.T) {
		h := start(t, l, bus, base, BrokerOptions{})
		h.add(t, &Message{Data: []byte("emit:a,b"), Props: h.correlated("inv-2")})
		h.settled(t, "emit:a,b")
		assert.Equal(t, []string{"a", "b"}, payloads(view(t, h, h.out)))
		replies := view(t, h, h.reply)
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
		h := start(t, l, bus, with(func(s *Settings) { s.MaxRetries = 3 }), BrokerOptions{})
		past := strconv.FormatInt(time.Now().Add(-time.Second).UnixMilli(), 10)
		h.add(t, &Message{Data: []byte("echo:late"), Props: h.correlated("inv-3", invocation.Deadline, past)})
		h.settled(t, "echo:late")
		assert.Empty(t, view(t, h, h.out), "not run")
		replies := view(t, h, h.reply)
		require.Len(t, replies, 1)
		r, _ := invocation.ParseReply(replies[0].Props)
		assert.True(t, r.Final)
		assert.Equal(t, engine.ErrDeadline.Error(), r.Error)
		assert.Equal(t, 1, h.Acks("echo:late"))
		assert.Zero(t, h.Nacks("echo:late"), "not redelivered")
		assert.Equal(t, engine.Counts{Received: 1, UserExceptions: 1}, h.totals(t))
	})

	t.Run("timeoutMs: a failure counted against retries, then dead-lettered", func(t *testing.T) {
		h := start(t, l, bus, with(func(s *Settings) { s.Timeout = 50 * time.Millisecond; s.MaxRetries = 1 }), BrokerOptions{MaxDeliveries: 2})
		h.add(t, &Message{Data: []byte("block"), Props: h.correlated("inv-4")})
		h.settled(t, "block")
		assert.Equal(t, []string{"block"}, h.Dead(t))
		assert.Equal(t, 2, h.Nacks("block"))
		assert.Zero(t, h.Acks("block"))
		assert.Equal(t, int64(2), h.totals(t).UserExceptions)
		replies := view(t, h, h.reply)
		require.Len(t, replies, 1, "the caller hears once, on the last try")
		r, _ := invocation.ParseReply(replies[0].Props)
		assert.Equal(t, 1, r.Attempt)
		assert.NotEmpty(t, r.Error)
	})

	t.Run("user failure: retried maxMessageRetries times, then dead-lettered", func(t *testing.T) {
		h := start(t, l, bus, with(func(s *Settings) { s.MaxRetries = 2 }), BrokerOptions{MaxDeliveries: 3})
		h.add(t, &Message{Data: []byte("fail"), Props: h.correlated("inv-5")})
		h.settled(t, "fail")
		assert.Equal(t, []string{"fail"}, h.Dead(t))
		assert.Equal(t, 3, h.Nacks("fail"))
		assert.Equal(t, engine.Counts{Received: 3, UserExceptions: 3}, h.totals(t))
		replies := view(t, h, h.reply)
		require.Len(t, replies, 1)
		r, _ := invocation.ParseReply(replies[0].Props)
		assert.Equal(t, invocation.Reply{ID: "inv-5", Seq: 0, Attempt: 2, Final: true, Error: "boom"}, r)
	})

	t.Run("retry forever (-1): every attempt is reported", func(t *testing.T) {
		h := start(t, l, bus, base, BrokerOptions{StopAfter: 2})
		h.add(t, &Message{Data: []byte("panic"), Props: h.correlated("inv-6")})
		h.settled(t, "panic")
		assert.Empty(t, h.Dead(t))
		assert.Equal(t, 3, h.Nacks("panic"))
		assert.Len(t, view(t, h, h.reply), 3)
	})

	t.Run("correlation properties are set last and cannot be forged", func(t *testing.T) {
		h := start(t, l, bus, with(func(s *Settings) { s.Forward = true }), BrokerOptions{})
		h.add(t, &Message{Data: []byte("forge"), MsgKey: "k1", Props: h.correlated("inv-7", "in", "1")})
		h.add(t, &Message{Data: []byte("forge"), Props: map[string]string{"in": "2"}})
		h.settled(t, "forge", "forge")
		out := view(t, h, h.out)
		require.Len(t, out, 2)
		for _, m := range out {
			assert.Equal(t, "1", m.Props["own"])
			assert.Equal(t, "k2", m.Key)
			assert.Equal(t, h.in, m.Props[invocation.InputTopic])
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
		h := start(t, l, bus, with(func(s *Settings) { s.Guarantee = engine.AtMostOnce; s.MaxRetries = 2 }), BrokerOptions{})
		h.add(t, &Message{Data: []byte("fail")})
		h.settled(t, "fail")
		assert.Equal(t, 1, h.Acks("fail"))
		waitFor(t, func() bool { return h.totals(t).UserExceptions == 1 })
		assert.Zero(t, h.Nacks("fail"))
	})

	t.Run("MANUAL: the function acks; a failure after its ack is not nacked", func(t *testing.T) {
		h := start(t, l, bus, with(func(s *Settings) { s.Guarantee = engine.Manual }), BrokerOptions{})
		h.add(t, &Message{Data: []byte("ack")})
		h.add(t, &Message{Data: []byte("ackfail")})
		h.settled(t, "ack", "ackfail")
		waitFor(t, func() bool { c := h.totals(t); return c.Processed == 1 && c.UserExceptions == 1 })
		assert.Equal(t, 1, h.Acks("ack"))
		assert.Equal(t, 1, h.Acks("ackfail"))
		assert.Zero(t, h.Nacks("ackfail"))
	})

	t.Run("MANUAL: an input the function did not ack is left alone on success, nacked on failure", func(t *testing.T) {
		h := start(t, l, bus, with(func(s *Settings) { s.Guarantee = engine.Manual }), BrokerOptions{StopAfter: 1})
		h.add(t, &Message{Data: []byte("fail")})
		h.add(t, &Message{Data: []byte("echo:x")})
		h.settled(t, "fail")
		waitFor(t, func() bool { return h.totals(t).Processed == 1 })
		assert.Zero(t, h.Acks("echo:x"))
		assert.Zero(t, h.Nacks("echo:x"))
	})

	t.Run("outputs not persisted: a system exception, nacked", func(t *testing.T) {
		h := start(t, l, bus, base, BrokerOptions{StopAfter: 1, FailOutput: true})
		h.add(t, &Message{Data: []byte("echo:x")})
		h.settled(t, "echo:x")
		assert.Equal(t, 2, h.Nacks("echo:x"))
		assert.Zero(t, h.Acks("echo:x"))
		assert.Equal(t, int64(2), h.totals(t).SystemExceptions)
	})

	t.Run("reply-to naming the output topic gets each output once", func(t *testing.T) {
		h := start(t, l, bus, base, BrokerOptions{})
		h.add(t, &Message{Data: []byte("echo:once"), Props: map[string]string{invocation.ID: "inv-8", invocation.ReplyTo: h.out}})
		h.settled(t, "echo:once")
		out := view(t, h, h.out)
		require.Len(t, out, 1)
		assert.Equal(t, "inv-8", out[0].Props[invocation.ID])
	})

	t.Run("no output topic and no reply-to: outputs dropped and counted", func(t *testing.T) {
		h := start(t, l, bus, with(func(s *Settings) { s.Output = "" }), BrokerOptions{})
		h.add(t, &Message{Data: []byte("echo:x")})
		h.settled(t, "echo:x")
		assert.Equal(t, 1, h.Acks("echo:x"))
	})

	t.Run("EFFECTIVELY_ONCE: sequence ids from the input's position; a failure is not redelivered", func(t *testing.T) {
		h := start(t, l, bus, with(func(s *Settings) { s.Guarantee = engine.EffectivelyOnce; s.Order = engine.Strict }), BrokerOptions{})
		h.add(t, &Message{Data: []byte("emit:a,b"), Props: h.correlated("inv-9")})
		h.add(t, &Message{Data: []byte("fail")})
		h.settled(t, "emit:a,b", "fail")
		out := view(t, h, h.out)
		require.Len(t, out, 2)
		if h.SequenceIDs() {
			require.NotNil(t, out[0].Seq)
			require.NotNil(t, out[1].Seq)
			assert.Equal(t, *out[0].Seq+1, *out[1].Seq)
			for _, r := range view(t, h, h.reply) {
				assert.Nil(t, r.Seq, "replies carry no sequence id")
			}
		}
		assert.Equal(t, 1, h.Acks("fail"))
		assert.Zero(t, h.Nacks("fail"))
	})

	for _, order := range []engine.Order{engine.Strict, engine.KeyOrdered} {
		t.Run(fmt.Sprintf("order %d: outputs keep their inputs' order (per key)", order), func(t *testing.T) {
			const n, keys = 200, 5
			h := start(t, l, bus, with(func(s *Settings) { s.Order = order; s.Lanes = 4 }), BrokerOptions{Capacity: n})
			var all []string
			for i := range n {
				p := fmt.Sprintf("echo:%d", i)
				all = append(all, p)
				h.add(t, &Message{Data: []byte(p), MsgKey: fmt.Sprint("k", i%keys)})
			}
			h.settled(t, all...)
			last := map[string]int{}
			for _, m := range view(t, h, h.out) {
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
		h := start(t, l, bus, base, BrokerOptions{})
		h.add(t, &Message{Data: []byte("echo:x")})
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
