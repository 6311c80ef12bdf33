package pulsarinvoke

import (
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/fnhost/fnhost/functions/pf/invocation"
	"github.com/fnhost/fnhost/trigger"
)

// fakeMessage is a reply-topic message.
type fakeMessage struct {
	pulsar.Message
	payload []byte
	key     string
	props   map[string]string
}

func (m fakeMessage) Payload() []byte               { return m.payload }
func (m fakeMessage) Key() string                   { return m.key }
func (m fakeMessage) Properties() map[string]string { return m.props }

func replyMsg(id string, seq int, payload string, final bool, errText string) fakeMessage {
	p := map[string]string{invocation.ID: id, invocation.Seq: strconv.Itoa(seq), "user": "u",
		invocation.InputMessageID: "x", invocation.ContentType: "text/plain"}
	if final {
		p[invocation.Final] = "true"
	}
	if errText != "" {
		p[invocation.Error] = errText
	}
	if final && payload == "" {
		p[invocation.End] = "true" // these tests' end markers: empty final messages
	}
	return fakeMessage{payload: []byte(payload), props: p}
}

// attempt marks m as a reply of the function's n-th retry.
func attempt(m fakeMessage, n int) fakeMessage {
	m.props[invocation.Attempt] = strconv.Itoa(n)
	return m
}

// run invokes wait on c in a goroutine, collecting the payloads emitted.
func run(t *testing.T, ctx context.Context, c *call, deadline time.Time) (func() (trigger.Result, error, []string), *[]string) {
	t.Helper()
	var got []string
	type result struct {
		res trigger.Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := (&Invoker{}).wait(ctx, trigger.Function{Tenant: "public", Namespace: "default", Name: "f"},
			&trigger.Request{ID: c.id, Deadline: deadline}, c, func(o trigger.Output) error {
				p := string(o.Payload)
				if o.Attempt > 0 {
					p += "@" + strconv.Itoa(o.Attempt)
				}
				got = append(got, p)
				return nil
			})
		done <- result{res, err}
	}()
	return func() (trigger.Result, error, []string) {
		select {
		case r := <-done:
			return r.res, r.err, got
		case <-time.After(5 * time.Second):
			t.Fatal("wait did not return")
			return trigger.Result{}, nil, nil
		}
	}, &got
}

func TestDemultiplexing(t *testing.T) {
	t.Parallel()
	deliverAll := func(tb *table, id string, msgs ...fakeMessage) {
		for _, m := range msgs {
			rid, r, ok := parseReply(m)
			require.True(t, ok)
			tb.deliver(rid, r)
		}
	}
	tests := []struct {
		name    string
		msgs    []fakeMessage
		want    []string
		wantErr string
	}{
		{"in order", []fakeMessage{replyMsg("a", 0, "x", false, ""), replyMsg("a", 1, "y", false, ""), replyMsg("a", 2, "z", true, "")}, []string{"x", "y", "z"}, ""},
		{"out of order", []fakeMessage{replyMsg("a", 2, "z", true, ""), replyMsg("a", 0, "x", false, ""), replyMsg("a", 1, "y", false, "")}, []string{"x", "y", "z"}, ""},
		{"duplicates ignored", []fakeMessage{replyMsg("a", 0, "x", false, ""), replyMsg("a", 0, "x", false, ""), replyMsg("a", 1, "y", true, ""), replyMsg("a", 1, "y", true, "")}, []string{"x", "y"}, ""},
		{"lone final: no output", []fakeMessage{replyMsg("a", 0, "", true, "")}, nil, ""},
		{"stream ends with a marker", []fakeMessage{replyMsg("a", 1, "", true, ""), replyMsg("a", 0, "x", false, "")}, []string{"x"}, ""},
		{"failure after outputs", []fakeMessage{replyMsg("a", 0, "x", false, ""), replyMsg("a", 1, "", true, "boom")}, []string{"x"}, "boom"},
		{"nothing after final", []fakeMessage{replyMsg("a", 0, "x", true, ""), replyMsg("a", 1, "late", false, "")}, []string{"x"}, ""},
		{"a retry replaces the failed attempt's outputs not taken", []fakeMessage{replyMsg("a", 1, "y", false, ""),
			attempt(replyMsg("a", 0, "X", false, ""), 1), attempt(replyMsg("a", 1, "Y", true, ""), 1)}, []string{"X@1", "Y@1"}, ""},
		{"replies of an earlier attempt are stale", []fakeMessage{attempt(replyMsg("a", 0, "X", true, ""), 2),
			attempt(replyMsg("a", 0, "x", false, ""), 1)}, []string{"X@2"}, ""},
		{"a retry's outputs carry its attempt", []fakeMessage{attempt(replyMsg("a", 1, "", true, ""), 1),
			attempt(replyMsg("a", 0, "X", false, ""), 1)}, []string{"X@1"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tb := newTable(10)
			c := newCall("a", false, 1<<20)
			require.NoError(t, tb.add(c))
			result, _ := run(t, context.Background(), c, time.Now().Add(time.Minute))
			deliverAll(tb, "a", tc.msgs...)
			res, err, got := result()
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, len(tc.want), res.Outputs)
			if tc.wantErr == "" {
				assert.Nil(t, res.Err)
			} else {
				require.NotNil(t, res.Err)
				assert.Equal(t, trigger.KindUser, res.Err.Kind)
				assert.Equal(t, tc.wantErr, res.Err.Message)
			}
		})
	}
}

func TestFailureAfterDeadlineIsDeadline(t *testing.T) {
	t.Parallel()
	tb := newTable(10)
	c := newCall("a", false, 1<<20)
	require.NoError(t, tb.add(c))
	result, _ := run(t, context.Background(), c, time.Now().Add(-time.Millisecond))
	_, r, _ := parseReply(replyMsg("a", 0, "", true, "deadline exceeded"))
	tb.deliver("a", r)
	res, err, _ := result()
	require.NoError(t, err)
	require.NotNil(t, res.Err)
	assert.Equal(t, trigger.KindDeadline, res.Err.Kind)
}

func TestContextDeadline(t *testing.T) {
	t.Parallel()
	tb := newTable(10)
	c := newCall("a", false, 1<<20)
	require.NoError(t, tb.add(c))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	result, _ := run(t, ctx, c, time.Now().Add(20*time.Millisecond))
	_, err, _ := result()
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestOutputProperties(t *testing.T) {
	t.Parallel()
	m := replyMsg("a", 0, "x", true, "")
	m.key = "k"
	id, r, ok := parseReply(m)
	require.True(t, ok)
	assert.Equal(t, "a", id)
	assert.Equal(t, trigger.Output{Payload: []byte("x"), Key: "k", ContentType: "text/plain", Properties: map[string]string{"user": "u"}}, r.out)

	_, _, ok = parseReply(fakeMessage{props: map[string]string{invocation.ID: "a"}})
	assert.False(t, ok, "no seq")
}

func TestUnknownRepliesDroppedAndCounted(t *testing.T) {
	t.Parallel()
	tb := newTable(10)
	c := newCall("a", false, 1<<20)
	require.NoError(t, tb.add(c))
	_, r, _ := parseReply(replyMsg("other", 0, "x", true, ""))
	tb.deliver("other", r)
	tb.remove(c)
	_, r, _ = parseReply(replyMsg("a", 0, "x", true, ""))
	tb.deliver("a", r) // finished: dropped too
	assert.Equal(t, uint64(2), tb.dropped.Load())
	rs, err := c.take()
	assert.Empty(t, rs)
	assert.NoError(t, err)
}

func TestMaxPendingOverloaded(t *testing.T) {
	t.Parallel()
	tb := newTable(2)
	a, b := newCall("a", false, 1), newCall("b", false, 1)
	require.NoError(t, tb.add(a))
	require.NoError(t, tb.add(b))
	assert.ErrorIs(t, tb.add(newCall("c", false, 1)), trigger.ErrOverloaded)
	tb.remove(a)
	assert.NoError(t, tb.add(newCall("c", false, 1)), "a slot is free again")

	tb.close(errClosed)
	assert.ErrorIs(t, tb.add(newCall("d", false, 1)), trigger.ErrUnavailable)
	_, err := b.take()
	assert.ErrorIs(t, err, trigger.ErrUnavailable, "close fails waiting calls")
}

func TestBacklogBounded(t *testing.T) {
	t.Parallel()
	tb := newTable(2)
	c := newCall("a", false, 10)
	require.NoError(t, tb.add(c))
	_, r, _ := parseReply(replyMsg("a", 1, "0123456789abc", false, "")) // early and too big
	tb.deliver("a", r)
	_, err := c.take()
	assert.ErrorIs(t, err, errBacklog)
}

// javaID encodes a message id as Java's MessageId.toByteArray does for a non-partitioned
// topic: no partition; a batch index and size only inside a batch of several.
func javaID(ledger, entry uint64, batch ...uint64) string {
	b := protowire.AppendTag(nil, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, ledger)
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, entry)
	if len(batch) == 2 {
		b = protowire.AppendTag(b, 4, protowire.VarintType)
		b = protowire.AppendVarint(b, batch[0])
		b = protowire.AppendTag(b, 6, protowire.VarintType)
		b = protowire.AppendVarint(b, batch[1])
	}
	return base64.StdEncoding.EncodeToString(b)
}

// goID encodes it as pulsar-client-go's Serialize: every field, -1 for none (int32 varints).
func goID(ledger, entry uint64, batchIdx, partition, batchSize int32) string {
	b := protowire.AppendTag(nil, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, ledger)
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, entry)
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(int64(partition)))
	b = protowire.AppendTag(b, 4, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(int64(batchIdx)))
	b = protowire.AppendTag(b, 6, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(int64(batchSize)))
	return base64.StdEncoding.EncodeToString(b)
}

func TestMessageIDLayouts(t *testing.T) {
	t.Parallel()
	published := func(ledger, entry int64, idx int32) msgKey {
		return keyOf(pulsar.NewMessageID(ledger, entry, idx, -1))
	}
	tests := []struct {
		name    string
		encoded string
		id      msgKey
		match   bool
	}{
		{"java single message", javaID(7, 42), published(7, 42, -1), true},
		{"java single vs go batch of one", javaID(7, 42), published(7, 42, 0), true},
		{"java batch index", javaID(7, 42, 3, 5), published(7, 42, 3), true},
		{"java other batch index", javaID(7, 42, 2, 5), published(7, 42, 3), false},
		{"java other entry", javaID(7, 43), published(7, 42, -1), false},
		{"go not batched", goID(7, 42, -1, -1, 0), published(7, 42, -1), true},
		{"go batch of one", goID(7, 42, 0, -1, 1), published(7, 42, 0), true},
		{"go partitioned batch", goID(7, 42, 4, 2, 8), published(7, 42, 4), true},
		{"go other ledger", goID(8, 42, -1, -1, 0), published(7, 42, -1), false},
		{"go serialize itself", base64.StdEncoding.EncodeToString(pulsar.NewMessageID(9, 1, 2, 0).Serialize()), published(9, 1, 2), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k, err := parseInputMessageID(tc.encoded)
			require.NoError(t, err)
			assert.Equal(t, tc.match, k == tc.id, "decoded %+v, published %+v", k, tc.id)
		})
	}
	_, err := parseInputMessageID("not base64!")
	assert.Error(t, err)
	_, err = parseInputMessageID(base64.StdEncoding.EncodeToString([]byte{0x08}))
	assert.Error(t, err, "truncated")
}

func TestFallbackMatching(t *testing.T) {
	t.Parallel()
	tb := newTable(10)
	k := msgKey{ledger: 1, entry: 2}

	// The output beats the receipt: kept, then delivered at bind.
	early := newCall("early", true, 1<<20)
	require.NoError(t, tb.add(early))
	tb.deliverOutput(k, trigger.Output{Payload: []byte("out")})
	tb.bind(early, k)
	rs, err := early.take()
	require.NoError(t, err)
	require.Len(t, rs, 1)
	assert.True(t, rs[0].final && rs[0].output)
	assert.Equal(t, "out", string(rs[0].out.Payload))

	// A function that replied to reply-to is not answered by the output topic.
	sdk := newCall("sdk", true, 1<<20)
	require.NoError(t, tb.add(sdk))
	k2 := msgKey{ledger: 1, entry: 3}
	tb.bind(sdk, k2)
	_, r, _ := parseReply(replyMsg("sdk", 0, "a", false, ""))
	tb.deliver("sdk", r)
	tb.deliverOutput(k2, trigger.Output{Payload: []byte("b")})
	rs, err = sdk.take()
	require.NoError(t, err)
	require.Len(t, rs, 1)
	assert.Equal(t, "a", string(rs[0].out.Payload))
	assert.Equal(t, uint64(1), tb.matched.Load())
}

func TestHealthBreaker(t *testing.T) {
	t.Parallel()
	now := time.Unix(0, 0)
	h := &health{interval: time.Second, now: func() time.Time { return now }}
	assert.True(t, h.allow())
	h.failed()
	assert.False(t, h.allow(), "refused at once after a failure")
	now = now.Add(time.Second)
	assert.True(t, h.allow(), "one probe per interval")
	assert.False(t, h.allow())
	h.ok()
	assert.True(t, h.allow())
	assert.False(t, h.isDown())
}

func TestSendErrors(t *testing.T) {
	t.Parallel()
	ps := &producers{health: &health{interval: time.Second, now: time.Now}}
	assert.ErrorIs(t, ps.sendError("t", pulsar.ErrSendTimeout), trigger.ErrUnavailable)
	assert.True(t, ps.health.isDown())
	assert.NoError(t, ps.sendError("t", nil))
	assert.False(t, ps.health.isDown())
	err := ps.sendError("t", pulsar.ErrMessageTooLarge)
	assert.False(t, errors.Is(err, trigger.ErrUnavailable))
}

// TestEmptyLastOutput: an empty final message without End is an output, not a marker.
func TestEmptyLastOutput(t *testing.T) {
	t.Parallel()
	m := replyMsg("id", 0, "", true, "")
	delete(m.props, invocation.End)
	_, r, ok := parseReply(m)
	require.True(t, ok)
	assert.True(t, r.output)
	assert.True(t, r.final)
}

// stubProducer answers Send with the next of its results; a nil channel entry blocks until
// release is closed.
type stubProducer struct {
	pulsar.Producer // only Send, FlushWithCtx and Close are called
	results         chan error
	release         chan struct{}
	sent            atomic.Int32
}

func (p *stubProducer) Send(ctx context.Context, _ *pulsar.ProducerMessage) (pulsar.MessageID, error) {
	p.sent.Add(1)
	err := <-p.results
	if errors.Is(err, errBlock) {
		select {
		case <-p.release:
			return nil, pulsar.ErrProducerClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return pulsar.EarliestMessageID(), err
}
func (p *stubProducer) FlushWithCtx(context.Context) error { return nil }
func (p *stubProducer) Close()                             { close(p.release) }

var errBlock = errors.New("block")

func stubProducers(p pulsar.Producer) *producers {
	e := &producerEntry{ready: make(chan struct{}), p: p}
	close(e.ready)
	return &producers{health: &health{interval: time.Minute, now: time.Now}, m: map[string]*producerEntry{"t": e}, sendBound: time.Minute}
}

// TestSendOpensTheBreaker: a send that fails marks Pulsar down, even when its caller left
// before the receipt, and the next send fails at once without reaching the producer.
func TestSendOpensTheBreaker(t *testing.T) {
	t.Parallel()
	p := &stubProducer{results: make(chan error, 4), release: make(chan struct{})}
	ps := stubProducers(p)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	p.results <- nil
	_, err := ps.send(ctx, "t", &pulsar.ProducerMessage{})
	require.NoError(t, err)

	// The caller gives up before the receipt; the receipt, a timeout, still opens the breaker.
	gone, leave := context.WithCancel(ctx)
	leave()
	_, err = ps.send(gone, "t", &pulsar.ProducerMessage{})
	assert.ErrorIs(t, err, context.Canceled, "a caller already gone publishes nothing")
	assert.EqualValues(t, 1, p.sent.Load())

	waiting, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { _, err := ps.send(waiting, "t", &pulsar.ProducerMessage{}); errc <- err }()
	require.Eventually(t, func() bool { return p.sent.Load() == 2 }, time.Minute, time.Millisecond)
	stop()
	assert.ErrorIs(t, <-errc, context.Canceled)
	p.results <- pulsar.ErrSendTimeout
	require.Eventually(t, ps.health.isDown, time.Minute, time.Millisecond)

	_, err = ps.send(ctx, "t", &pulsar.ProducerMessage{})
	assert.ErrorIs(t, err, trigger.ErrUnavailable)
	assert.EqualValues(t, 2, p.sent.Load(), "refused without reaching the producer")
}

// TestCloseWaitsForSends: close lets a send under way end before it closes the producer,
// and a send that meets a closed producer is not an outage.
func TestCloseWaitsForSends(t *testing.T) {
	t.Parallel()
	p := &stubProducer{results: make(chan error, 1), release: make(chan struct{})}
	ps := stubProducers(p)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p.results <- errBlock
	errc := make(chan error, 1)
	go func() { _, err := ps.send(ctx, "t", &pulsar.ProducerMessage{}); errc <- err }()
	require.Eventually(t, func() bool { return p.sent.Load() == 1 }, time.Minute, time.Millisecond)

	short, stop := context.WithTimeout(ctx, 50*time.Millisecond)
	defer stop()
	assert.ErrorContains(t, ps.close(short), "sends still under way", "the blocked send held close up until its bound")
	err := <-errc
	assert.ErrorIs(t, err, errProducersClosed, "closing the producer answered the send")
	assert.False(t, ps.health.isDown(), "a closed producer is not an outage")
	_, err = ps.send(ctx, "t", &pulsar.ProducerMessage{})
	assert.ErrorIs(t, err, errProducersClosed)
}
