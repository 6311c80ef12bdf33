package instance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
	pb "github.com/fnhost/fnhost/functions/pf/internal/pfproto"
	"github.com/fnhost/fnhost/functions/pf/invocation"
)

// fakeAcker records acks and nacks.
type fakeAcker struct {
	mu          sync.Mutex
	acks, nacks []string
}

func (f *fakeAcker) Ack(m pulsar.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.acks = append(f.acks, string(m.Payload()))
	return nil
}

func (f *fakeAcker) Nack(m pulsar.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nacks = append(f.nacks, string(m.Payload()))
}

func (f *fakeAcker) settled() (acks, nacks []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.acks...), append([]string(nil), f.nacks...)
}

type sent struct {
	topic string
	reply bool // published as a reply-to topic's
	msg   *pulsar.ProducerMessage
}

// fakeOut records published messages. With hold set, completions wait for release.
type fakeOut struct {
	fail map[string]error // per topic
	hold bool

	mu      sync.Mutex
	sent    []sent
	pending []func()
}

func (f *fakeOut) publish(topic string, reply bool, m *pulsar.ProducerMessage, done func(error)) {
	f.mu.Lock()
	f.sent = append(f.sent, sent{topic, reply, m})
	err := f.fail[topic]
	if f.hold {
		f.pending = append(f.pending, func() { done(err) })
		f.mu.Unlock()
		return
	}
	f.mu.Unlock()
	done(err)
}

func (f *fakeOut) release() {
	f.mu.Lock()
	p := f.pending
	f.pending = nil
	f.mu.Unlock()
	for _, done := range p {
		done()
	}
}

func (f *fakeOut) to(topic string) []*pulsar.ProducerMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*pulsar.ProducerMessage
	for _, s := range f.sent {
		if s.topic == topic {
			out = append(out, s.msg)
		}
	}
	return out
}

// replyTopics are the topics published to as reply-to topics.
func (f *fakeOut) replyTopics() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var topics []string
	for _, s := range f.sent {
		if s.reply && !slices.Contains(topics, s.topic) {
			topics = append(topics, s.topic)
		}
	}
	return topics
}

type procOpt func(c *Config)

func newTestProcessor(t *testing.T, h call.Handler, out publisher, opts ...procOpt) *processor {
	t.Helper()
	cfg := &Config{
		Guarantee:         pb.ProcessingGuarantees_ATLEAST_ONCE,
		Concurrency:       1,
		ForwardProperties: true,
		Info:              call.Info{Tenant: "t", Namespace: "n", Name: "f", OutputTopic: "out", UserConfig: map[string]any{}},
	}
	for _, o := range opts {
		o(cfg)
	}
	st := newStats(&cfg.Info, time.Now)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	return &processor{
		cfg: cfg, handler: call.Safe(h), stats: st, logger: logger, out: out, now: time.Now,
		env:     &env{info: &cfg.Info, stats: st, logger: logger},
		callCtx: t.Context(),
	}
}

func input(payload string, props map[string]string) *call.Message {
	return &call.Message{TopicName: "persistent://t/n/in", Data: []byte(payload), Props: props, MsgKey: "key",
		MsgID: pulsar.NewMessageID(1, 2, 0, 0)}
}

func echo(_ context.Context, _ call.Env, inv *call.Invocation) ([]byte, error) {
	return inv.Message.Payload(), nil
}

func failing(context.Context, call.Env, *call.Invocation) ([]byte, error) {
	return nil, errors.New("boom")
}

func TestProcessGuarantees(t *testing.T) {
	t.Parallel()
	panics := func(context.Context, call.Env, *call.Invocation) ([]byte, error) { panic("oops") }
	tests := []struct {
		name           string
		guarantee      pb.ProcessingGuarantees
		handler        call.Handler
		fail           error
		wantAcks       []string
		wantNacks      []string
		wantOut        int
		wantProcessed  int64
		wantUser       int64
		wantSystem     int64
		wantUserExcTxt string
	}{
		{name: "at least once, success", guarantee: pb.ProcessingGuarantees_ATLEAST_ONCE, handler: echo,
			wantAcks: []string{"m"}, wantOut: 1, wantProcessed: 1},
		{name: "at least once, error", guarantee: pb.ProcessingGuarantees_ATLEAST_ONCE, handler: failing,
			wantNacks: []string{"m"}, wantUser: 1, wantUserExcTxt: "boom"},
		{name: "at least once, panic", guarantee: pb.ProcessingGuarantees_ATLEAST_ONCE, handler: panics,
			wantNacks: []string{"m"}, wantUser: 1, wantUserExcTxt: "function panicked: oops"},
		{name: "at least once, publish fails", guarantee: pb.ProcessingGuarantees_ATLEAST_ONCE, handler: echo,
			fail: pulsar.ErrMessageTooLarge, wantNacks: []string{"m"}, wantOut: 1, wantSystem: 1},
		{name: "at most once, success", guarantee: pb.ProcessingGuarantees_ATMOST_ONCE, handler: echo,
			wantAcks: []string{"m"}, wantOut: 1, wantProcessed: 1},
		{name: "at most once, error: acked on receipt, never nacked", guarantee: pb.ProcessingGuarantees_ATMOST_ONCE, handler: failing,
			wantAcks: []string{"m"}, wantUser: 1, wantUserExcTxt: "boom"},
		{name: "manual, success: the SDK does not ack", guarantee: pb.ProcessingGuarantees_MANUAL, handler: echo,
			wantOut: 1, wantProcessed: 1},
		{name: "manual, error: nacked", guarantee: pb.ProcessingGuarantees_MANUAL, handler: failing,
			wantNacks: []string{"m"}, wantUser: 1, wantUserExcTxt: "boom"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out := &fakeOut{fail: map[string]error{"out": tc.fail}}
			p := newTestProcessor(t, tc.handler, out, func(c *Config) { c.Guarantee = tc.guarantee })
			ack := &fakeAcker{}
			p.process(delivery{from: ack, msg: input("m", nil)})
			p.inflight.Wait()
			acks, nacks := ack.settled()
			assert.Equal(t, tc.wantAcks, acks, "acks")
			assert.Equal(t, tc.wantNacks, nacks, "nacks")
			assert.Len(t, out.to("out"), tc.wantOut)
			st := p.stats.status(0)
			assert.Equal(t, int64(1), st.NumReceived)
			assert.Equal(t, tc.wantProcessed, st.NumSuccessfullyProcessed)
			assert.Equal(t, tc.wantUser, st.NumUserExceptions)
			assert.Equal(t, tc.wantSystem, st.NumSystemExceptions)
			if tc.wantUserExcTxt != "" {
				require.Len(t, st.LatestUserExceptions, 1)
				assert.Equal(t, tc.wantUserExcTxt, st.LatestUserExceptions[0].ExceptionString)
			}
		})
	}
}

func TestProcessManualAck(t *testing.T) {
	t.Parallel()
	h := func(_ context.Context, _ call.Env, inv *call.Invocation) ([]byte, error) {
		require.NotNil(t, inv.Ack)
		require.NoError(t, inv.Ack())
		return nil, errors.New("after ack")
	}
	p := newTestProcessor(t, h, &fakeOut{}, func(c *Config) { c.Guarantee = pb.ProcessingGuarantees_MANUAL })
	ack := &fakeAcker{}
	p.process(delivery{from: ack, msg: input("m", nil)})
	p.inflight.Wait()
	acks, nacks := ack.settled()
	assert.Equal(t, []string{"m"}, acks)
	assert.Empty(t, nacks, "an input the function acked is not nacked")
}

func TestProcessAckWaitsForOutputs(t *testing.T) {
	t.Parallel()
	out := &fakeOut{hold: true}
	p := newTestProcessor(t, echo, out)
	ack := &fakeAcker{}
	p.process(delivery{from: ack, msg: input("m", nil)})
	acks, _ := ack.settled()
	assert.Empty(t, acks, "not acked while the output is in flight")
	out.release()
	p.inflight.Wait()
	acks, _ = ack.settled()
	assert.Equal(t, []string{"m"}, acks)
}

func TestProcessReplies(t *testing.T) {
	t.Parallel()
	req := map[string]string{invocation.ID: "inv-1", invocation.ReplyTo: "reply", "x": "y"}
	emitTwice := func(ret []byte, err error) call.Handler {
		return func(ctx context.Context, _ call.Env, inv *call.Invocation) ([]byte, error) {
			for i := range 2 {
				if e := inv.Emit(ctx, call.Output{Payload: fmt.Appendf(nil, "e%d", i)}); e != nil {
					return nil, e
				}
			}
			return ret, err
		}
	}
	type reply struct {
		payload, seq, final, errText string
	}
	tests := []struct {
		name      string
		handler   call.Handler
		props     map[string]string
		retries   int
		redeliver uint32
		wantSink  []string
		wantReply []reply
		wantAcks  int
	}{
		{name: "outputs and a final return", handler: emitTwice([]byte("r"), nil), props: req,
			wantSink:  []string{"e0", "e1", "r"},
			wantReply: []reply{{"e0", "0", "", ""}, {"e1", "1", "", ""}, {"r", "2", "true", ""}}, wantAcks: 1},
		{name: "emits then no return value: empty final", handler: emitTwice(nil, nil), props: req,
			wantSink:  []string{"e0", "e1"},
			wantReply: []reply{{"e0", "0", "", ""}, {"e1", "1", "", ""}, {"", "2", "true", ""}}, wantAcks: 1},
		{name: "error: final with the error", handler: failing, props: req,
			wantReply: []reply{{"", "0", "true", "boom"}}},
		{name: "error with retries left: no reply yet", handler: failing, props: req, retries: 2, redeliver: 1},
		{name: "error on the last retry: reply", handler: failing, props: req, retries: 2, redeliver: 2,
			wantReply: []reply{{"", "0", "true", "boom"}}},
		{name: "deadline passed: not called, error reply, acked",
			handler: func(context.Context, call.Env, *call.Invocation) ([]byte, error) {
				panic("must not be called")
			},
			props:     map[string]string{invocation.ReplyTo: "reply", invocation.Deadline: "1000"},
			wantReply: []reply{{"", "0", "true", call.ErrDeadline.Error()}}, wantAcks: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out := &fakeOut{}
			p := newTestProcessor(t, tc.handler, out, func(c *Config) { c.MaxRetries = tc.retries })
			ack := &fakeAcker{}
			msg := input("m", tc.props)
			msg.Redeliveries = tc.redeliver
			p.process(delivery{from: ack, msg: msg})
			p.inflight.Wait()

			var sink []string
			for _, m := range out.to("out") {
				sink = append(sink, string(m.Payload))
				assert.Equal(t, "key", m.Key)
				assert.Equal(t, "y", m.Properties["x"], "input properties forwarded")
				assert.NotContains(t, m.Properties, invocation.ReplyTo, "reply-to is not forwarded downstream")
				assert.Equal(t, "persistent://t/n/in", m.Properties[invocation.InputTopic])
			}
			assert.Equal(t, tc.wantSink, sink)
			var replies []reply
			for _, m := range out.to("reply") {
				if id, ok := tc.props[invocation.ID]; ok {
					assert.Equal(t, id, m.Properties[invocation.ID])
				}
				wantAttempt := ""
				if tc.redeliver > 0 {
					wantAttempt = strconv.Itoa(int(tc.redeliver))
				}
				assert.Equal(t, wantAttempt, m.Properties[invocation.Attempt], "the attempt is the redelivery count")
				replies = append(replies, reply{string(m.Payload), m.Properties[invocation.Seq],
					m.Properties[invocation.Final], m.Properties[invocation.Error]})
			}
			assert.Equal(t, tc.wantReply, replies)
			if len(tc.wantReply) > 0 {
				assert.Equal(t, []string{"reply"}, out.replyTopics(), "replies go through the reply-to producers, outputs not")
			}
			acks, nacks := ack.settled()
			assert.Len(t, acks, tc.wantAcks)
			assert.Len(t, nacks, 1-tc.wantAcks)
		})
	}
}

func TestProcessTimeout(t *testing.T) {
	t.Parallel()
	h := func(ctx context.Context, _ call.Env, _ *call.Invocation) ([]byte, error) {
		<-ctx.Done() // returns when timeoutMs expires
		return nil, ctx.Err()
	}
	p := newTestProcessor(t, h, &fakeOut{}, func(c *Config) { c.Timeout = 10 * time.Millisecond })
	ack := &fakeAcker{}
	p.process(delivery{from: ack, msg: input("m", nil)})
	p.inflight.Wait()
	_, nacks := ack.settled()
	assert.Equal(t, []string{"m"}, nacks)
	assert.Equal(t, context.DeadlineExceeded.Error(), p.stats.status(0).LatestUserExceptions[0].ExceptionString)
}

func TestDispatchKeepsKeyOrder(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[string][]int{}
	h := func(_ context.Context, _ call.Env, inv *call.Invocation) ([]byte, error) {
		n, err := strconv.Atoi(string(inv.Message.Payload()))
		if err != nil {
			return nil, err
		}
		mu.Lock()
		seen[inv.Message.Key()] = append(seen[inv.Message.Key()], n)
		mu.Unlock()
		return nil, nil
	}
	p := newTestProcessor(t, h, &fakeOut{}, func(c *Config) { c.Concurrency = 4 })
	in := make(chan delivery)
	var wg sync.WaitGroup
	wg.Go(func() { p.dispatch(t.Context(), in) })
	ack := &fakeAcker{}
	const perKey = 50
	keys := []string{"a", "b", "c", "d", "e", "f"}
	for i := range perKey {
		for _, k := range keys {
			m := input(strconv.Itoa(i), nil)
			m.MsgKey = k
			in <- delivery{from: ack, msg: m}
		}
	}
	close(in)
	wg.Wait()
	p.inflight.Wait()
	acks, _ := ack.settled()
	assert.Len(t, acks, perKey*len(keys))
	for _, k := range keys {
		require.Len(t, seen[k], perKey, "key %s", k)
		for i, n := range seen[k] {
			assert.Equal(t, i, n, "key %s out of order", k)
		}
	}
}

// TestReplyToTheOutputTopic: a reply-to naming the output topic gets each output once,
// carrying the reply properties.
func TestReplyToTheOutputTopic(t *testing.T) {
	t.Parallel()
	out := &fakeOut{}
	p := newTestProcessor(t, echo, out)
	p.process(delivery{from: &fakeAcker{}, msg: input("m", map[string]string{invocation.ID: "inv-1", invocation.ReplyTo: "out"})})
	p.inflight.Wait()
	got := out.to("out")
	require.Len(t, got, 1, "one message, not an output and a reply")
	assert.Equal(t, "0", got[0].Properties[invocation.Seq])
	assert.Equal(t, "true", got[0].Properties[invocation.Final])
	assert.Empty(t, out.replyTopics())
}
