package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	pulsarlog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/rest"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
)

// flow is one contender's pair of topics.
type flow struct {
	name    string // short, in topic and function names
	in, out string
}

// running is a started throughput contender.
type running struct {
	// task is the contender's main loop; it ends early only when the contender fails.
	task *task
	// pids returns the processes whose memory to report after the load; nil for none.
	pids func() ([]int, error)
	// stop stops the contender, bounded by ctx.
	stop func(ctx context.Context) error
}

// contender drains a flow's input into its output.
type contender struct {
	label    string
	name     string
	baseline bool
	profile  bool // the CPU profile, if asked for, covers this contender
	start    func(ctx context.Context, f flow) (*running, error)
	// memLabel names its processes in the memory section; empty for none.
	memLabel string
	// plugins is true when those processes are plugins, held to the per-plugin memory target.
	plugins bool
}

// tally is what the output counter saw.
type tally struct {
	distinct, dups int
	first, last    time.Time
}

// rate is messages per second from the first to the last distinct output: the start-up of
// the contender (process launch, connection, subscription) is not in it, for any contender.
func (t tally) rate() float64 {
	if t.distinct < 2 {
		return 0
	}
	return float64(t.distinct-1) / max(t.last.Sub(t.first), time.Microsecond).Seconds()
}

// throughput runs measurement 1 and adds the memory of the plugin processes to mem.
func (b *bench) throughput(ctx context.Context, mem *memory) (*section, error) {
	n := b.cfg.N
	sec := newSection(fmt.Sprintf("pulsar throughput (%s msgs × %d B)", count(float64(n)), payloadSize),
		"msgs/s", "range", "vs baseline", "target", "")
	client, err := b.pulsarClient()
	if err != nil {
		return nil, err
	}
	defer client.Close()
	admin, err := pulsaradmin.NewClient(&pulsaradmin.Config{WebServiceURL: b.cfg.AdminURL})
	if err != nil {
		return nil, fmt.Errorf("admin client for %s: %w", b.cfg.AdminURL, err)
	}
	var topics []string
	defer func() {
		// Cleanup failures are reported, not fatal: the topics carry the bench- prefix.
		for _, t := range topics {
			if err := deleteTopic(admin, t); err != nil {
				b.progress("warning: deleting %s: %v", t, err)
			}
		}
	}()

	contenders := []contender{
		{label: "baseline: bare pulsar-client-go loop", name: "base", baseline: true, start: b.startBareLoop},
		{label: "pulsar functions instance (echo)", name: "inst", start: b.startInstance,
			memLabel: "pulsar functions instance process (echo)"},
		{label: "host runtime echo p=1", name: "host1", profile: true, start: b.startHost(1),
			memLabel: "echo plugin under host runtime p=1", plugins: true},
		{label: "host runtime echo p=2", name: "host2", start: b.startHost(2),
			memLabel: "echo plugin under host runtime p=2", plugins: true},
	}
	samples := make([][]float64, len(contenders))
	dups := make([]int, len(contenders))
	failed := make([]error, len(contenders))
	mems := make([][]rss, len(contenders))
	// Rounds interleave the contenders, so that a slow spell of the shared broker (GC,
	// compaction) does not land on one contender only; each round uses fresh topics.
	for round := 1; round <= rounds; round++ {
		for i, c := range contenders {
			if failed[i] != nil {
				continue
			}
			f := flow{
				name: fmt.Sprintf("%s-r%d", c.name, round),
				in:   fmt.Sprintf("persistent://public/default/bench-%s-%s-r%d-in", b.runID, c.name, round),
				out:  fmt.Sprintf("persistent://public/default/bench-%s-%s-r%d-out", b.runID, c.name, round),
			}
			topics = append(topics, f.in, f.out)
			c.profile = c.profile && round == rounds // one profile, of the last round
			t, m, err := b.drain(ctx, client, c, f, fmt.Sprintf("round %d/%d: %s", round, rounds, c.label))
			if err != nil {
				if errors.Is(err, errOperational) || ctx.Err() != nil {
					return nil, err
				}
				// The contender itself failed: that is a result, not a broken run.
				failed[i] = fmt.Errorf("round %d: %w", round, err)
				continue
			}
			samples[i] = append(samples[i], t.rate())
			dups[i] += t.dups
			mems[i] = m
		}
	}

	var base float64
	target := "≥" + ratio(throughputTargetRatio)
	for i, c := range contenders {
		if failed[i] != nil {
			sec.note("%s: %v", c.label, failed[i])
			if c.baseline {
				sec.add(c.label, "failed", "")
			} else {
				sec.add(c.label, "failed", "", "", target, "MISS")
			}
			continue
		}
		if dups[i] > 0 {
			sec.note("%s: %d duplicate outputs (redeliveries), not counted", c.label, dups[i])
		}
		r := median(samples[i])
		spread := count(slices.Min(samples[i])) + "–" + count(slices.Max(samples[i]))
		switch {
		case c.baseline:
			base = r
			sec.add(c.label, count(r), spread)
		case base > 0:
			sec.add(c.label, count(r), spread, ratio(r/base), target, verdict(r >= throughputTargetRatio*base))
		default:
			sec.add(c.label, count(r), spread, "—", target, "MISS")
		}
		for j, v := range mems[i] {
			label := c.memLabel
			if len(mems[i]) > 1 {
				label = fmt.Sprintf("%s #%d", label, j)
			}
			mem.add(label+fmt.Sprintf(" (after %s msgs)", count(float64(n))), v, c.plugins)
		}
	}
	sec.note("msgs/s: median of %d interleaved rounds, each (N−1) / (last − first distinct output seen by a separate consumer"+
		" on the output topic), the same for every contender", rounds)
	return sec, nil
}

// median of xs, which is not empty.
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// errOperational marks errors of the benchmark's own machinery (Pulsar down, a topic that
// cannot be filled): they end the run.
var errOperational = errors.New("operational error")

// drain fills f.in with N messages, starts c, counts N distinct outputs on f.out within the
// phase's bound, reads the memory of c's processes and stops c.
func (b *bench) drain(ctx context.Context, client pulsar.Client, c contender, f flow, label string) (tally, []rss, error) {
	n := b.cfg.N
	limit := 30*time.Second + time.Duration(n)*time.Millisecond
	b.progress("%s: filling %d messages into %s…", label, n, f.in)
	fillCtx, cancel := context.WithTimeout(ctx, limit)
	err := fill(fillCtx, client, f.in, n)
	cancel()
	if err != nil {
		return tally{}, nil, fmt.Errorf("%w: filling %s: %w", errOperational, f.in, err)
	}
	ctr, err := newCounter(client, f.out, n)
	if err != nil {
		return tally{}, nil, fmt.Errorf("%w: %w", errOperational, err)
	}
	defer ctr.close()

	if c.profile && b.cfg.CPUProfile != "" {
		stopProfile, err := startProfile(b.cfg.CPUProfile)
		if err != nil {
			return tally{}, nil, fmt.Errorf("%w: %w", errOperational, err)
		}
		defer func() {
			if err := stopProfile(); err != nil {
				b.progress("warning: %v", err)
			} else {
				b.progress("CPU profile of %s in %s", label, b.cfg.CPUProfile)
			}
		}()
	}

	b.progress("%s: draining (at most %s)…", label, limit)
	runCtx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	r, err := c.start(runCtx, f)
	if err != nil {
		return tally{}, nil, err
	}
	t, waitErr := ctr.wait(runCtx, r.task)
	var mems []rss
	if waitErr == nil && r.pids != nil {
		pids, err := r.pids()
		if err != nil {
			waitErr = err
		}
		for _, pid := range pids {
			v, err := vmRSS(pid)
			if err != nil {
				waitErr = errors.Join(waitErr, err)
				continue
			}
			mems = append(mems, v)
		}
	}
	stopCtx, cancelStop := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancelStop()
	if err := r.stop(stopCtx); err != nil {
		waitErr = errors.Join(waitErr, fmt.Errorf("stopping: %w", err))
	}
	if waitErr != nil {
		return t, nil, waitErr
	}
	b.progress("%s: %s msgs/s", label, count(t.rate()))
	return t, mems, nil
}

func (b *bench) pulsarClient() (pulsar.Client, error) {
	c, err := pulsar.NewClient(pulsar.ClientOptions{
		URL:               b.cfg.PulsarURL,
		ConnectionTimeout: 10 * time.Second,
		OperationTimeout:  30 * time.Second,
		Logger:            pulsarlog.NewLoggerWithSlog(b.log.With("component", "pulsar")),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: connecting to Pulsar at %s: %w", errOperational, b.cfg.PulsarURL, err)
	}
	return c, nil
}

// payload is message i: its index, then filler that compresses like text.
func payload(i int) []byte {
	const filler = "fnhost bench payload: the quick brown fox jumps over the lazy dog. "
	p := make([]byte, payloadSize)
	binary.BigEndian.PutUint64(p, uint64(i))
	copy(p[8:], filler+filler)
	return p
}

// fill produces n messages to topic and waits until all are persisted.
func fill(ctx context.Context, client pulsar.Client, topic string, n int) error {
	p, err := client.CreateProducer(pulsar.ProducerOptions{
		Topic:                   topic,
		CompressionType:         pulsar.LZ4,
		BatchingMaxPublishDelay: 10 * time.Millisecond,
	})
	if err != nil {
		return fmt.Errorf("creating producer: %w", err)
	}
	defer p.Close()
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	for i := range n {
		wg.Add(1)
		p.SendAsync(ctx, &pulsar.ProducerMessage{Payload: payload(i)}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			defer wg.Done()
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
		})
	}
	if err := p.FlushWithCtx(ctx); err != nil {
		return fmt.Errorf("flushing: %w", err)
	}
	wg.Wait()
	if k := failed.Load(); k > 0 {
		return fmt.Errorf("%d of %d sends failed, first: %v", k, n, firstErr.Load())
	}
	return nil
}

// counter counts the distinct outputs (by the index in their payload) on a topic.
type counter struct {
	consumer pulsar.Consumer
	n        int
	done     chan struct{} // closed by the counting goroutine when it returns
	cancel   context.CancelFunc

	mu  sync.Mutex
	t   tally
	err error
}

// newCounter subscribes to topic from the earliest message (before any contender publishes)
// and counts until n distinct outputs are in or close is called.
func newCounter(client pulsar.Client, topic string, n int) (*counter, error) {
	cons, err := client.Subscribe(pulsar.ConsumerOptions{
		Topic:                       topic,
		SubscriptionName:            "bench-counter",
		Type:                        pulsar.Exclusive,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
		ReceiverQueueSize:           1000,
	})
	if err != nil {
		return nil, fmt.Errorf("subscribing the counter to %s: %w", topic, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &counter{consumer: cons, n: n, done: make(chan struct{}), cancel: cancel}
	go c.run(ctx)
	return c, nil
}

func (c *counter) run(ctx context.Context) {
	defer close(c.done)
	seen := make([]bool, c.n)
	for {
		msg, err := c.consumer.Receive(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.mu.Lock()
				c.err = fmt.Errorf("counting outputs: %w", err)
				c.mu.Unlock()
			}
			return
		}
		now := time.Now()
		// Acks keep the broker dispatching past its unacked-message limit; a lost ack only
		// means a redelivery, which counts as a duplicate.
		_ = c.consumer.Ack(msg)
		p := msg.Payload()
		i := -1
		if len(p) == payloadSize {
			i = int(binary.BigEndian.Uint64(p))
		}
		c.mu.Lock()
		switch {
		case i < 0 || i >= c.n:
			c.err = fmt.Errorf("output %s: not an input echoed (%d bytes)", msg.ID(), len(p))
		case seen[i]:
			c.t.dups++
		default:
			seen[i] = true
			if c.t.distinct == 0 {
				c.t.first = now
			}
			c.t.distinct++
			c.t.last = now
		}
		stop := c.t.distinct == c.n || c.err != nil
		c.mu.Unlock()
		if stop {
			return
		}
	}
}

// wait waits until all n outputs are in, the contender fails, or ctx ends.
func (c *counter) wait(ctx context.Context, contender *task) (tally, error) {
	var err error
	select {
	case <-c.done:
	case <-contender.done:
		err = contender.err
		if err == nil {
			err = errors.New("stopped before all outputs were in")
		}
	case <-ctx.Done():
		err = fmt.Errorf("timed out: %w", context.Cause(ctx))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.err != nil:
		return c.t, c.err
	case err != nil:
		return c.t, fmt.Errorf("%w after %s of %s outputs", err, count(float64(c.t.distinct)), count(float64(c.n)))
	}
	return c.t, nil
}

func (c *counter) close() {
	c.cancel()
	<-c.done
	c.consumer.Close()
}

// startProfile starts a CPU profile into path; the returned function stops it.
func startProfile(path string) (func() error, error) {
	f, err := os.Create(filepath.Clean(path))
	if err != nil {
		return nil, fmt.Errorf("creating the CPU profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return nil, errors.Join(fmt.Errorf("starting the CPU profile: %w", err), f.Close())
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

// deleteTopic deletes a topic with its subscriptions; a topic that was never created is fine.
func deleteTopic(admin pulsaradmin.Client, topic string) error {
	tn, err := utils.GetTopicName(topic)
	if err != nil {
		return err
	}
	if err := admin.Topics().Delete(*tn, true, true); err != nil {
		var re rest.Error
		if errors.As(err, &re) && re.Code == 404 {
			return nil
		}
		return err
	}
	return nil
}
