//go:build integration

package host

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/functions/pf/invocation"
	"github.com/fnhost/fnhost/internal/manifest"
	"github.com/fnhost/fnhost/internal/pulsartest"
)

// topics returns unique input and output topics for one test.
func topics(t *testing.T) (in, out string) {
	return pulsartest.Topic(t), pulsartest.Topic(t)
}

// runHost starts a Pulsar-mode host for fns and runs it until the test ends.
func runHost(t *testing.T, fns ...*manifest.Function) *Host {
	t.Helper()
	pulsartest.Require(t)
	h := newHostNoCleanup(t, Config{Functions: fns, PulsarURL: pulsartest.ServiceURL(), Logger: pulsartest.Logger(t)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err, "host shutdown")
		case <-time.After(2 * time.Minute):
			t.Error("host did not shut down")
		}
	})
	return h
}

func newHostNoCleanup(t *testing.T, cfg Config) *Host {
	t.Helper()
	cfg.BuildDir = buildDir() + "/" + t.Name()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	h, err := New(ctx, cfg)
	require.NoError(t, err)
	return h
}

// sendN publishes n messages "<prefix><i>" with key keyOf(i) and waits for all.
func sendN(ctx context.Context, t *testing.T, client pulsar.Client, topic string, n int, prefix string, keyOf func(int) string) {
	t.Helper()
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	require.NoError(t, err)
	defer p.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := range n {
		wg.Add(1)
		msg := &pulsar.ProducerMessage{Payload: []byte(prefix + strconv.Itoa(i))}
		if keyOf != nil {
			msg.Key = keyOf(i)
		}
		p.SendAsync(ctx, msg, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
			}
		})
	}
	require.NoError(t, p.FlushWithCtx(ctx))
	wg.Wait()
	require.NoError(t, firstErr)
}

// receiveUntil consumes topic from the earliest message until done returns true for the
// messages so far, or ctx ends (a test failure).
func receiveUntil(ctx context.Context, t *testing.T, c pulsar.Consumer, done func([]pulsar.Message) bool) []pulsar.Message {
	t.Helper()
	var msgs []pulsar.Message
	for !done(msgs) {
		m, err := c.Receive(ctx)
		require.NoError(t, err, "after %d messages", len(msgs))
		require.NoError(t, c.Ack(m))
		msgs = append(msgs, m)
	}
	return msgs
}

func subscribeEarliest(t *testing.T, client pulsar.Client, topic string) pulsar.Consumer {
	t.Helper()
	c, err := client.Subscribe(pulsar.ConsumerOptions{
		Topic: topic, SubscriptionName: "check", SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
		ReceiverQueueSize: 2000,
	})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func distinct(msgs []pulsar.Message) map[string]int {
	seen := map[string]int{}
	for _, m := range msgs {
		seen[string(m.Payload())]++
	}
	return seen
}

func TestPulsarFunctionsRun(t *testing.T) {
	t.Parallel()
	client := pulsartest.Client(t)
	upIn, upOut := topics(t)
	stIn, stOut := topics(t)
	h := runHost(t,
		fnManifest(t, "upper", "upper-"+pulsartest.Name(t), upIn, "output: "+upOut+"\nsubscriptionPosition: Earliest\n"),
		fnManifest(t, "stream", "stream-"+pulsartest.Name(t), stIn, "output: "+stOut+"\nsubscriptionPosition: Earliest\n"),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	upC := subscribeEarliest(t, client, upOut)
	stC := subscribeEarliest(t, client, stOut)

	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: upIn})
	require.NoError(t, err)
	defer p.Close()
	_, err = p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("hello"), Key: "k1", Properties: map[string]string{"trace": "t1"}})
	require.NoError(t, err)
	sendN(ctx, t, client, upIn, 19, "m", nil)
	sendN(ctx, t, client, stIn, 5, "", func(int) string { return "s" }) // payloads 0..4 → "0" is a word, 1..4 chunk counts

	outs := receiveUntil(ctx, t, upC, func(m []pulsar.Message) bool { return len(m) == 20 })
	// A Shared subscription runs inputs in several lanes at once: outputs come in the order
	// the invocations end, which need not be the order the inputs were sent in.
	i := slices.IndexFunc(outs, func(m pulsar.Message) bool { return string(m.Payload()) == "HELLO" })
	require.GreaterOrEqual(t, i, 0, "the output of the first input is among the outputs")
	hello := outs[i]
	assert.Equal(t, "k1", hello.Key())
	assert.Equal(t, "t1", hello.Properties()["trace"])
	assert.Equal(t, upIn, hello.Properties()[invocation.InputTopic])
	assert.NotEmpty(t, hello.Properties()[invocation.InputMessageID])
	assert.NotContains(t, hello.Properties(), invocation.Final, "an input without a caller gets no reply properties")

	// 1 + 1+2+3+4 chunks
	st := receiveUntil(ctx, t, stC, func(m []pulsar.Message) bool { return len(m) == 11 })
	assert.Equal(t, 11, len(distinct(st)))

	fqfn := h.Functions()[0].FQFN()
	require.Eventually(t, func() bool {
		return snapshot(t, h, fqfn, 0).Total.Processed == 20
	}, time.Minute, 50*time.Millisecond, "processed_successfully counts every input")
	assert.Equal(t, int64(20), snapshot(t, h, fqfn, 0).Total.Received)
}

func TestPulsarReplyTo(t *testing.T) {
	t.Parallel()
	client := pulsartest.Client(t)
	in, out := topics(t)
	replies := pulsartest.Topic(t)
	runHost(t, fnManifest(t, "stream", "stream-"+pulsartest.Name(t), in, "output: "+out+"\nsubscriptionPosition: Earliest\n"),
		fnManifest(t, "flaky", "flaky-"+pulsartest.Name(t), in+"-f", "subscriptionPosition: Earliest\nmaxMessageRetries: 0\n"))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rc := subscribeEarliest(t, client, replies)

	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: in})
	require.NoError(t, err)
	defer p.Close()
	_, err = p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("3"), Properties: map[string]string{invocation.ID: "inv-1", invocation.ReplyTo: replies}})
	require.NoError(t, err)
	_, err = p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte(""), Properties: map[string]string{invocation.ID: "inv-empty", invocation.ReplyTo: replies}})
	require.NoError(t, err)
	pf, err := client.CreateProducer(pulsar.ProducerOptions{Topic: in + "-f"})
	require.NoError(t, err)
	defer pf.Close()
	_, err = pf.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("fail"), Properties: map[string]string{invocation.ID: "inv-fail", invocation.ReplyTo: replies}})
	require.NoError(t, err)

	msgs := receiveUntil(ctx, t, rc, func(m []pulsar.Message) bool { return len(m) == 6 })
	byID := map[string][]pulsar.Message{}
	for _, m := range msgs {
		byID[m.Properties()[invocation.ID]] = append(byID[m.Properties()[invocation.ID]], m)
	}
	// stream emits its chunks and returns nothing: an end marker follows them (engine doc).
	require.Len(t, byID["inv-1"], 4)
	for i, m := range byID["inv-1"] {
		if i < 3 {
			assert.Equal(t, fmt.Sprintf("chunk %d/3", i+1), string(m.Payload()))
		}
		assert.Equal(t, strconv.Itoa(i), m.Properties()[invocation.Seq])
		assert.Equal(t, i == 3, m.Properties()[invocation.Final] == "true")
		assert.Equal(t, i == 3, m.Properties()[invocation.End] == "true")
		assert.Empty(t, m.Properties()[invocation.ReplyTo], "reply-to is not forwarded")
	}
	require.Len(t, byID["inv-empty"], 1, "no output: one lone final message")
	assert.Equal(t, "true", byID["inv-empty"][0].Properties()[invocation.Final])
	assert.Equal(t, "true", byID["inv-empty"][0].Properties()[invocation.End], "the lone final is not an output")
	require.Len(t, byID["inv-fail"], 1)
	assert.Contains(t, byID["inv-fail"][0].Properties()[invocation.Error], "marker")
	assert.Equal(t, "true", byID["inv-fail"][0].Properties()[invocation.End])
	assert.Equal(t, "true", byID["inv-fail"][0].Properties()[invocation.Final])
}

// TestPulsarKill9Plugin kills the plugin process with SIGKILL during a 2,000-message run: every
// input still yields its output (duplicates allowed and counted), and the plugin comes back.
func TestPulsarKill9Plugin(t *testing.T) {
	t.Parallel()
	client := pulsartest.Client(t)
	in, out := topics(t)
	name := "echo-" + pulsartest.Name(t)
	h := runHost(t, fnManifest(t, "echo", name, in, "output: "+out+"\nsubscriptionPosition: Earliest\n"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	oc := subscribeEarliest(t, client, out)
	fqfn := "public/default/" + name
	pids, err := h.Pids(fqfn)
	require.NoError(t, err)

	// Half the inputs, the kill once outputs flow, then the other half: inputs in flight at
	// the kill and every input after it must all come out.
	const n = 2000
	sendN(ctx, t, client, in, n/2, "m", nil)
	msgs := receiveUntil(ctx, t, oc, func(m []pulsar.Message) bool { return len(m) >= 200 })
	require.NoError(t, syscall.Kill(pids[0], syscall.SIGKILL))
	killed := true
	p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: in})
	require.NoError(t, err)
	defer p.Close()
	for i := n / 2; i < n; i++ {
		p.SendAsync(ctx, &pulsar.ProducerMessage{Payload: []byte("m" + strconv.Itoa(i))}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			assert.NoError(t, err)
		})
	}
	require.NoError(t, p.FlushWithCtx(ctx))
	msgs = append(msgs, receiveUntil(ctx, t, oc, func(m []pulsar.Message) bool { return len(distinct(append(m, msgs...))) == n })...)
	require.True(t, killed)
	seen := distinct(msgs)
	dups := len(msgs) - len(seen)
	t.Logf("kill -9 during %d messages: %d outputs, %d distinct, %d duplicates", n, len(msgs), len(seen), dups)
	for i := range n {
		assert.Contains(t, seen, "m"+strconv.Itoa(i))
	}
	require.Eventually(t, func() bool {
		p, _ := h.Pids(fqfn)
		return p[0] != 0 && p[0] != pids[0]
	}, time.Minute, 10*time.Millisecond, "the plugin is back")
	assert.GreaterOrEqual(t, h.Status()[0].Pool.Slots[0].Restarts, 1)
}

// TestPulsarRetriesAndDeadLetter: failing inputs are retried with backoff and land on the
// dead-letter topic after maxMessageRetries; the other inputs flow meanwhile.
func TestPulsarRetriesAndDeadLetter(t *testing.T) {
	t.Parallel()
	client := pulsartest.Client(t)
	in, out := topics(t)
	dlq := pulsartest.Topic(t)
	name := "flaky-" + pulsartest.Name(t)
	h := runHost(t, fnManifest(t, "flaky", name, in, fmt.Sprintf(
		"output: %s\nsubscriptionPosition: Earliest\nmaxMessageRetries: 2\ndeadLetterTopic: %s\nuserConfig:\n  fnhost.retryBackoff: 100ms\n", out, dlq)))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	oc := subscribeEarliest(t, client, out)
	dc := subscribeEarliest(t, client, dlq)

	sendN(ctx, t, client, in, 3, "fail-", nil)
	sendN(ctx, t, client, in, 50, "ok-", nil)
	outs := receiveUntil(ctx, t, oc, func(m []pulsar.Message) bool { return len(distinct(m)) == 50 })
	for _, m := range outs {
		assert.NotContains(t, string(m.Payload()), "fail")
	}
	dead := receiveUntil(ctx, t, dc, func(m []pulsar.Message) bool { return len(distinct(m)) == 3 })
	for _, m := range dead {
		assert.Contains(t, string(m.Payload()), "fail-")
	}
	fn := h.Functions()[0]
	userExc := float64(snapshot(t, h, fn.FQFN(), 0).Total.UserExceptions)
	assert.Equal(t, 9.0, userExc, "each failing input ran 1 + 2 retries times")
}

// TestPulsarKeyOrdering: with retainKeyOrdering and parallelism 2, each key's outputs keep its
// inputs' order across 5,000 messages and 50 keys.
func TestPulsarKeyOrdering(t *testing.T) {
	t.Parallel()
	client := pulsartest.Client(t)
	in, out := topics(t)
	runHost(t, fnManifest(t, "echo", "echo-"+pulsartest.Name(t), in, "output: "+out+"\nsubscriptionPosition: Earliest\nretainKeyOrdering: true\nparallelism: 2\n"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	oc := subscribeEarliest(t, client, out)
	const n, keys = 5000, 50
	sendN(ctx, t, client, in, n, "", func(i int) string { return "key-" + strconv.Itoa(i%keys) })
	msgs := receiveUntil(ctx, t, oc, func(m []pulsar.Message) bool { return len(m) == n })
	last := map[string]int{}
	for _, m := range msgs {
		i, err := strconv.Atoi(string(m.Payload()))
		require.NoError(t, err)
		k := m.Key()
		require.Equal(t, "key-"+strconv.Itoa(i%keys), k)
		if prev, ok := last[k]; ok {
			require.Greater(t, i, prev, "key %s: output %d after %d", k, i, prev)
		}
		last[k] = i
	}
	assert.Len(t, last, keys)
}

// TestPulsarReloadMidRun replaces the function's binary during a run: nothing is lost and the
// new version's outputs appear.
func TestPulsarReloadMidRun(t *testing.T) {
	t.Parallel()
	client := pulsartest.Client(t)
	in, out := topics(t)
	name := "echo-" + pulsartest.Name(t)
	h := runHost(t, fnManifest(t, "echo", name, in, "output: "+out+"\nsubscriptionPosition: Earliest\nparallelism: 2\n"))
	upper := fnManifest(t, "upper", "upper-src", "x", "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	upperBin, err := h.Build(ctx, upper)
	require.NoError(t, err)
	oc := subscribeEarliest(t, client, out)

	// Half the inputs, the reload while they flow, then the other half: nothing is lost, and
	// every input sent after the reload is answered by the new version.
	const n = 1000
	sendN(ctx, t, client, in, n/2, "m", nil)
	msgs := receiveUntil(ctx, t, oc, func(m []pulsar.Message) bool { return len(m) >= 50 })
	require.NoError(t, h.Reload(ctx, "public/default/"+name, upperBin))
	sendN(ctx, t, client, in, n/2, "after", nil)
	msgs = append(msgs, receiveUntil(ctx, t, oc, func(m []pulsar.Message) bool {
		seen := map[string]bool{}
		for _, x := range append(m, msgs...) {
			seen[strings.ToLower(string(x.Payload()))] = true
		}
		return len(seen) == n
	})...)
	for _, m := range msgs {
		if p := string(m.Payload()); strings.HasPrefix(strings.ToLower(p), "after") {
			assert.True(t, strings.HasPrefix(p, "AFTER"), "an input sent after the reload is answered by the new version: %s", p)
		}
	}
}

// TestPulsarEffectivelyOnce kills the plugin with SIGKILL while inputs flow through an
// EFFECTIVELY_ONCE function whose output topic deduplicates: the inputs in flight are
// redelivered and processed again, and the broker drops their repeated outputs, so every input
// yields exactly one output.
func TestPulsarEffectivelyOnce(t *testing.T) {
	t.Parallel()
	pulsartest.Require(t)
	client := pulsartest.Client(t)
	admin := pulsartest.Admin(t)
	ns := "public/" + pulsartest.Name(t)
	require.NoError(t, admin.Namespaces().CreateNamespace(ns))
	require.NoError(t, admin.Namespaces().SetDeduplicationStatus(ns, true))
	in, out := "persistent://"+ns+"/in", "persistent://"+ns+"/out"
	name := "eo-" + pulsartest.Name(t)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Without deduplication the host refuses, naming the fix.
	plain := pulsartest.Topic(t)
	_, err := New(ctx, Config{BuildDir: buildDir() + "/" + t.Name(), PulsarURL: pulsartest.ServiceURL(), AdminURL: pulsartest.AdminURL(),
		Functions: []*manifest.Function{fnManifest(t, "echo", name+"-x", plain, "output: "+plain+"-out\nprocessingGuarantees: EFFECTIVELY_ONCE\n")}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "set-deduplication")

	h := newHostNoCleanup(t, Config{PulsarURL: pulsartest.ServiceURL(), AdminURL: pulsartest.AdminURL(), Logger: pulsartest.Logger(t),
		Functions: []*manifest.Function{fnManifest(t, "echo", name, in, "output: "+out+"\nsubscriptionPosition: Earliest\nprocessingGuarantees: EFFECTIVELY_ONCE\n")}})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		assert.NoError(t, <-done)
	})
	oc := subscribeEarliest(t, client, out)
	pids, err := h.Pids("public/default/" + name)
	require.NoError(t, err)

	const n = 1000
	sendN(ctx, t, client, in, n/2, "m", nil)
	msgs := receiveUntil(ctx, t, oc, func(m []pulsar.Message) bool { return len(m) >= 50 })
	require.NoError(t, syscall.Kill(pids[0], syscall.SIGKILL))
	sendN(ctx, t, client, in, n/2, "n", nil)
	// A sentinel last: with one ordered lane, its output comes after every other output.
	sendN(ctx, t, client, in, 1, "end", nil)
	msgs = append(msgs, receiveUntil(ctx, t, oc, func(m []pulsar.Message) bool {
		return len(m) > 0 && string(m[len(m)-1].Payload()) == "end0"
	})...)
	seen := distinct(msgs)
	assert.Len(t, seen, n+1)
	assert.Equal(t, len(seen), len(msgs), "no output twice: the broker dropped the repeats")
}
