package host

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/fnhost/fnhost/functions/pf/invocation"
	"github.com/fnhost/fnhost/functions/pf/plugin"
	"github.com/fnhost/fnhost/internal/manifest"
	"github.com/fnhost/fnhost/internal/sleep"
)

// runner feeds one function from Pulsar: one consumer for the function's inputs, lanes that
// run invocations on the function's pool, producers for its outputs.
//
// Ordering: a lane runs its inputs one after the other. With retainOrdering (a Failover
// subscription) there is one lane, so outputs keep the input order; with retainKeyOrdering
// (Key_Shared) an input's lane is chosen by its key, so each key keeps its order; otherwise
// (Shared) every lane receives from the consumer itself, the next input going to whichever
// lane is free, so one slow invocation does not hold up the inputs queued behind it, and no
// goroutine stands between the consumer and the lanes. The lane count, parallelism ×
// MaxInFlight, bounds the invocations in flight.
type runner struct {
	h        *Host
	f        *function
	log      *slog.Logger
	consumer pulsar.Consumer
	// queues feed the lanes: one per lane with Key_Shared, one for the lane of Failover;
	// receive sends and closes them. None with Shared, where the lanes receive themselves.
	queues []chan pulsar.Message
	// lanes is the number of lanes.
	lanes int
	// out is the producer of the output topic, created up front; nil without an output topic.
	out pulsar.Producer

	work       context.Context // invocations; cancelled when drain's bound passes
	cancelWork context.CancelFunc
	lanesDone  sync.WaitGroup
	lanesOnce  sync.Once
	settling   sync.WaitGroup // inputs whose outputs are still being persisted

	intake     context.Context // receive's; cancelled by drain
	stopIntake context.CancelFunc
	recvMu     sync.Mutex
	recvState  int           // 0 not started, 1 receiving, 2 stopped
	recvDone   chan struct{} // closed when receive returns

	mu        sync.Mutex
	producers map[string]pulsar.Producer
}

// laneBuffer is the queue of one lane: small, so that unacknowledged inputs stay in the
// consumer's receiver queue (and with the broker) rather than pile up here. A queue shared by
// several lanes holds laneBuffer per lane, as their own queues would.
const laneBuffer = 4

func newRunner(ctx context.Context, h *Host, f *function, log *slog.Logger) (*runner, error) {
	m := f.m
	opts := pulsar.ConsumerOptions{
		Topics:            m.Inputs,
		SubscriptionName:  m.Subscription,
		Type:              subscriptionType(m.SubscriptionType),
		NackBackoffPolicy: backoff{initial: m.RetryBackoff, max: 60 * time.Second},
		Properties: map[string]string{
			"application": "fnhost", "id": m.FQFN(),
		},
	}
	if m.Pattern != "" {
		opts.Topics, opts.TopicsPattern = nil, m.Pattern
	}
	if m.Earliest {
		opts.SubscriptionInitialPosition = pulsar.SubscriptionPositionEarliest
	}
	if m.MaxRetries >= 0 {
		// MaxDeliveries counts the first delivery: maxMessageRetries retries means
		// maxMessageRetries+1 deliveries, then the dead-letter topic (the client's default name,
		// <topic>-<subscription>-DLQ, when the manifest names none).
		opts.DLQ = &pulsar.DLQPolicy{MaxDeliveries: uint32(m.MaxRetries) + 1, DeadLetterTopic: m.DeadLetterTopic}
	}
	c, err := h.client.Subscribe(opts)
	if err != nil {
		return nil, fmt.Errorf("subscribing %s to %s: %w", m.Subscription, strings.Join(m.Inputs, ","), err)
	}
	n := 1
	if m.SubscriptionType != manifest.Failover {
		n = m.Parallelism * h.cfg.MaxInFlight
	}
	r := &runner{h: h, f: f, log: log, consumer: c, lanes: n, producers: map[string]pulsar.Producer{}, recvDone: make(chan struct{})}
	r.work, r.cancelWork = context.WithCancel(context.Background())
	r.intake, r.stopIntake = context.WithCancel(context.Background())
	switch m.SubscriptionType {
	case manifest.KeyShared:
		for range n {
			r.queues = append(r.queues, make(chan pulsar.Message, laneBuffer))
		}
	case manifest.Failover:
		r.queues = []chan pulsar.Message{make(chan pulsar.Message, laneBuffer)}
	}
	for _, queue := range r.queues {
		r.lanesDone.Go(func() {
			for msg := range queue {
				r.process(r.work, msg)
			}
		})
	}
	if m.Output != "" {
		p, err := r.producer(m.Output, false)
		if err == nil && m.Guarantee == manifest.EffectivelyOnce {
			err = checkDeduplication(ctx, h.cfg.AdminURL, m.Output)
		}
		if err != nil {
			r.close()
			return nil, err
		}
		r.out = p
	}
	return r, nil
}

func subscriptionType(t manifest.SubscriptionType) pulsar.SubscriptionType {
	switch t {
	case manifest.Failover:
		return pulsar.Failover
	case manifest.KeyShared:
		return pulsar.KeyShared
	default:
		return pulsar.Shared
	}
}

// backoff is an exponential nack backoff: initial × 2^redeliveries, capped at max.
type backoff struct{ initial, max time.Duration }

// Next implements pulsar.NackBackoffPolicy.
func (b backoff) Next(redeliveryCount uint32) time.Duration {
	d := b.initial
	for i := uint32(0); i < redeliveryCount && d < b.max; i++ {
		d *= 2
	}
	return min(d, b.max)
}

// receive takes inputs and hands them to lanes until ctx ends or drain stops intake; then it
// closes the lanes. With Shared, it starts the lanes, which receive themselves until then,
// and returns when intake ends (the lanes finish the input they hold). It runs at most once.
func (r *runner) receive(ctx context.Context) {
	r.recvMu.Lock()
	if r.recvState != 0 {
		r.recvMu.Unlock()
		return
	}
	r.recvState = 1
	r.recvMu.Unlock()
	defer close(r.recvDone)
	defer r.closeLanes()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(r.intake, cancel)
	defer stop()
	if len(r.queues) == 0 {
		for range r.lanes {
			r.lanesDone.Go(func() { r.pull(ctx) })
		}
		<-ctx.Done()
		return
	}
	for {
		msg, err := r.consumer.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("receiving", "err", err)
			continue
		}
		queue := r.queues[r.queueOf(msg)]
		select {
		case queue <- msg:
		case <-ctx.Done():
			// Not handed over: it stays unacknowledged and is redelivered.
			r.consumer.Nack(msg)
			return
		}
	}
}

// pull is a lane that receives its inputs itself, until ctx ends: an input it received is
// run to its end (on r.work).
func (r *runner) pull(ctx context.Context) {
	for {
		msg, err := r.consumer.Receive(ctx)
		if err != nil {
			var perr *pulsar.Error
			if ctx.Err() != nil || (errors.As(err, &perr) && perr.Result() == pulsar.ConsumerClosed) {
				return
			}
			// Receive fails only when closed or cancelled today; should that change, a lane
			// must not spin on an error that repeats.
			r.log.Warn("receiving", "err", err)
			if !sleep.For(ctx, 100*time.Millisecond) {
				return
			}
			continue
		}
		r.process(r.work, msg)
	}
}

// queueOf picks msg's queue: by its key with Key_Shared, else the only one.
func (r *runner) queueOf(msg pulsar.Message) int {
	n := len(r.queues)
	if n == 1 {
		return 0
	}
	k := msg.OrderingKey()
	if k == "" {
		k = msg.Key()
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(k)) // hash writes never fail
	return int(h.Sum32() % uint32(n))
}

func (r *runner) closeLanes() {
	r.lanesOnce.Do(func() {
		for _, q := range r.queues {
			close(q)
		}
	})
}

// drain stops intake, waits for the lanes to finish the inputs they hold, bounded by ctx; past
// the bound, the invocations still running are cancelled (their inputs are not acknowledged and
// will be redelivered). Then it flushes the producers.
func (r *runner) drain(ctx context.Context) error {
	r.stopIntake()
	r.recvMu.Lock()
	state := r.recvState
	r.recvState = 2
	r.recvMu.Unlock()
	if state == 1 {
		<-r.recvDone
	} else {
		r.closeLanes()
	}
	done := make(chan struct{})
	go func() {
		r.lanesDone.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("%s: in-flight invocations did not finish within the shutdown timeout; cancelled (they will be redelivered)", r.f.m.FQFN())
		r.cancelWork()
		<-done
	}
	r.mu.Lock()
	for topic, p := range r.producers {
		if ferr := p.FlushWithCtx(ctx); ferr != nil {
			err = errors.Join(err, fmt.Errorf("flushing producer of %s: %w", topic, ferr))
		}
	}
	r.mu.Unlock()
	// Every input still being settled waits for its sends' callbacks, which flush hastened.
	settled := make(chan struct{})
	go func() {
		r.settling.Wait()
		close(settled)
	}()
	select {
	case <-settled:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("%s: outputs not persisted within the shutdown timeout (their inputs will be redelivered)", r.f.m.FQFN()))
	}
	return err
}

// close closes the producers and the consumer.
func (r *runner) close() {
	r.cancelWork()
	r.mu.Lock()
	for _, p := range r.producers {
		p.Close()
	}
	r.producers = map[string]pulsar.Producer{}
	r.mu.Unlock()
	r.consumer.Close()
}

// producer returns the cached producer for topic: the output topic's, or with reply true a
// reply-to topic's.
func (r *runner) producer(topic string, reply bool) (pulsar.Producer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.producers[topic]; ok {
		return p, nil
	}
	opts := producerOptions(r.f.m, topic, reply)
	p, err := r.h.client.CreateProducer(opts)
	if err != nil {
		return nil, fmt.Errorf("creating producer for %s: %w", topic, err)
	}
	r.producers[topic] = p
	return p, nil
}

// producerOptions are the options of m's producer for topic: Pulsar Functions' defaults (LZ4,
// 10 ms batching) and the manifest's producerConfig; a reply-to topic's (reply true) batches
// for invocation.ReplyBatchingDelay only.
func producerOptions(m *manifest.Function, topic string, reply bool) pulsar.ProducerOptions {
	opts := pulsar.ProducerOptions{
		Topic:                   topic,
		CompressionType:         pulsar.LZ4,
		BatchingMaxPublishDelay: 10 * time.Millisecond,
		Properties:              map[string]string{"application": "fnhost", "id": m.FQFN()},
	}
	if pc := m.Config.ProducerConfig; pc != nil {
		switch strings.ToUpper(pc.CompressionType) {
		case "NONE":
			opts.CompressionType = pulsar.NoCompression
		case "ZLIB":
			opts.CompressionType = pulsar.ZLib
		case "ZSTD":
			opts.CompressionType = pulsar.ZSTD
		}
		if pc.MaxPendingMessages > 0 {
			opts.MaxPendingMessages = pc.MaxPendingMessages
		}
		if pc.BatchBuilder == "KEY_BASED" {
			opts.BatcherBuilderType = pulsar.KeyBasedBatchBuilder
		}
	}
	if m.Config.BatchBuilder == "KEY_BASED" {
		opts.BatcherBuilderType = pulsar.KeyBasedBatchBuilder
	}
	if reply {
		opts.BatchingMaxPublishDelay = invocation.ReplyBatchingDelay
	}
	if m.Guarantee == manifest.EffectivelyOnce && topic == m.Output {
		// The broker deduplicates by producer name and sequence id: the name must survive
		// restarts of the runtime.
		opts.Name = "fnhost-" + strings.ReplaceAll(m.FQFN(), "/", "-")
	}
	return opts
}

// process runs one input through the function and settles it: ack, or nack for a retry.
func (r *runner) process(ctx context.Context, msg pulsar.Message) {
	m := r.f.m
	start := time.Now()
	ctx, span := r.traceProcess(ctx, msg)
	if m.Guarantee == manifest.AtMostOnce {
		if err := r.consumer.Ack(msg); err != nil {
			r.log.Warn("acknowledging on receipt", "message_id", msg.ID().String(), "err", err)
		}
	}
	props := msg.Properties()
	ireq, perr := invocation.ParseRequest(props, msg.RedeliveryCount())
	if perr != nil {
		r.log.Warn("ignoring a malformed invocation property", "message_id", msg.ID().String(), "err", perr)
	}
	deadline := ireq.Deadline
	if m.Timeout > 0 {
		if d := start.Add(m.Timeout); deadline.IsZero() || d.Before(deadline) {
			deadline = d
		}
	}
	req := &plugin.Request{
		Payload: msg.Payload(), Key: msg.Key(), OrderingKey: msg.OrderingKey(), Properties: span.forFunction(props),
		Topic: msg.Topic(), ProducerName: msg.ProducerName(), MessageID: serializeID(msg.ID()),
		EventTime: msg.EventTime(), PublishTime: msg.PublishTime(), RedeliveryCount: msg.RedeliveryCount(),
		Deadline: deadline,
	}
	var (
		out   *outputs
		acked bool
		slot  int
		res   plugin.Result
		err   error
	)
	for attempt := 0; ; attempt++ {
		// An EFFECTIVELY_ONCE rerun (below) is another attempt: its replies must not splice
		// into the dead run's.
		ireq.Attempt = int(msg.RedeliveryCount()) + attempt
		out = r.newOutputs(msg, ireq)
		span.propagate(out.base)
		res, slot, err = r.f.pool.Invoke(ctx, req, func(e plugin.Event) error {
			switch e.Kind {
			case plugin.EventOutput:
				return out.add(ctx, e.Output)
			case plugin.EventMetric:
				r.h.metrics.onUserMetric(r.f.labels[0], e.Metric.Name, e.Metric.Value)
			case plugin.EventAck:
				if m.Guarantee == manifest.Manual && !acked {
					acked = true
					return r.consumer.Ack(msg)
				}
			}
			return nil
		})
		// EFFECTIVELY_ONCE: an input whose plugin died runs again here, before the next input.
		// Redelivered later, after newer inputs, its outputs would carry lower sequence ids
		// than outputs already persisted, and the broker would drop them as duplicates. The
		// outputs the dead attempt did persist are dropped as duplicates when repeated.
		if err == nil || m.Guarantee != manifest.EffectivelyOnce || ctx.Err() != nil {
			break
		}
		r.log.Warn("invocation not run; running it again before the next input (EFFECTIVELY_ONCE)", "message_id", msg.ID().String(), "attempt", attempt+1, "err", err)
		sleep.For(ctx, min(r.f.m.RetryBackoff<<min(attempt, 6), 30*time.Second)) // the loop checks ctx
	}
	sm := r.f.slots[slot]
	sm.onReceived()

	failed := ""
	switch {
	case err != nil:
		failed = err.Error()
	case res.Kind != plugin.KindNone:
		failed = res.Error
		if failed == "" {
			failed = res.Kind.String()
		}
	}
	lastTry := m.MaxRetries >= 0 && int(msg.RedeliveryCount()) >= m.MaxRetries
	// A failure is reported to the caller only when no retry will follow.
	report := failed == "" || m.MaxRetries < 0 || lastTry || (!deadline.IsZero() && time.Now().After(deadline))
	// The input is settled once its outputs are persisted, in the last send's callback: the
	// lane goes on with the next input meanwhile (outputs keep their order in the producer).
	r.settling.Add(1)
	out.finish(ctx, failed, report, func(sendErr error) {
		defer r.settling.Done()
		r.conclude(msg, sm, start, err, res, lastTry, sendErr)
		span.end(err, res, sendErr)
	})
}

// conclude counts and settles one input once its outputs are persisted (or failed).
func (r *runner) conclude(msg pulsar.Message, sm *slotMetrics, start time.Time, err error, res plugin.Result, lastTry bool, sendErr error) {
	m := r.f.m
	switch {
	case err != nil:
		sm.onSystemException()
		r.log.Warn("invocation not run; redelivering", "message_id", msg.ID().String(), "err", err)
		r.settle(msg, false)
	case res.Kind != plugin.KindNone:
		sm.onUserException()
		if lastTry {
			r.h.metrics.deadLettered.WithLabelValues(m.FQFN()).Inc()
		}
		r.log.Debug("function failed", "message_id", msg.ID().String(), "kind", res.Kind.String(), "err", res.Error, "redeliveries", msg.RedeliveryCount())
		// Under EFFECTIVELY_ONCE a failed input is not redelivered: after newer inputs its
		// outputs would be dropped as duplicates. It is settled as processed, with its failure
		// counted and reported to reply-to.
		r.settle(msg, m.Guarantee == manifest.EffectivelyOnce)
	case sendErr != nil:
		sm.onSystemException()
		r.log.Warn("publishing outputs; redelivering the input", "message_id", msg.ID().String(), "err", sendErr)
		r.settle(msg, false)
	default:
		sm.onSuccess(time.Since(start))
		r.settle(msg, true)
	}
}

// sequenceID derives the sequence id of output n of the input with id from the input's
// position, so that a redelivered input's outputs carry the ids they had the first time and
// the broker drops them as duplicates. Layout, 63 bits: ledger (25) | entry (20) | batch index
// (10, the Go client batches up to 1000) | output (8): under EFFECTIVELY_ONCE an input has at
// most 256 outputs. EFFECTIVELY_ONCE uses one lane (Failover), so the ids increase.
func sequenceID(id pulsar.MessageID, n int) (int64, error) {
	ledger, entry, batch := id.LedgerID(), id.EntryID(), int64(max(id.BatchIdx(), 0))
	if ledger < 0 || ledger >= 1<<25 || entry < 0 || entry >= 1<<20 || batch >= 1<<10 || n >= 1<<8 {
		return 0, fmt.Errorf("EFFECTIVELY_ONCE: input %s, output %d, is beyond the sequence id layout (ledger < 2^25, entry < 2^20, batch index < 1024, at most 256 outputs per input)", id, n)
	}
	return ledger<<38 | entry<<18 | batch<<8 | int64(n), nil
}

// serializeID encodes id as the Go client's MessageID.Serialize does (MessageIdData: ledger,
// entry, partition, batch index, batch size; pulsar.DeserializeMessageID reads it back), by
// hand: Serialize goes through protobuf reflection, a measurable cost per input.
func serializeID(id pulsar.MessageID) []byte {
	b := make([]byte, 0, 48)
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(id.LedgerID()))
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(id.EntryID()))
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(int64(id.PartitionIdx())))
	b = protowire.AppendTag(b, 4, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(int64(id.BatchIdx())))
	b = protowire.AppendTag(b, 6, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(int64(id.BatchSize())))
}

// checkDeduplication fails unless the broker deduplicates messages on topic, which
// EFFECTIVELY_ONCE relies on.
func checkDeduplication(ctx context.Context, adminURL, topic string) error {
	rest, ok := strings.CutPrefix(topic, "persistent://")
	if !ok {
		return fmt.Errorf("EFFECTIVELY_ONCE needs a persistent output topic, not %s", topic)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	url := strings.TrimRight(adminURL, "/") + "/admin/v2/persistent/" + rest + "/deduplicationEnabled?applied=true"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("EFFECTIVELY_ONCE: checking deduplication of %s: %w", topic, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return fmt.Errorf("EFFECTIVELY_ONCE: checking deduplication of %s: %w", topic, err)
	}
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "true" {
		ns := rest[:strings.LastIndex(rest, "/")]
		return fmt.Errorf("EFFECTIVELY_ONCE needs broker deduplication on %s, which is off (%s: %s); enable it with: pulsar-admin namespaces set-deduplication %s --enable",
			topic, resp.Status, strings.TrimSpace(string(body)), ns)
	}
	return nil
}

// settle acknowledges a processed input or negatively acknowledges a failed one, as the
// processing guarantee says.
func (r *runner) settle(msg pulsar.Message, ok bool) {
	switch r.f.m.Guarantee {
	case manifest.AtMostOnce:
		return // acknowledged on receipt
	case manifest.Manual:
		if ok {
			return // the function acknowledges itself
		}
	}
	if ok {
		if err := r.consumer.Ack(msg); err != nil {
			r.log.Warn("acknowledging", "message_id", msg.ID().String(), "err", err)
		}
		return
	}
	r.consumer.Nack(msg)
}

// outputs publishes the outputs of one invocation: to the output topic, and to the reply-to
// topic when the input names one. It holds back one output so that the last one can carry
// invocation.Final; an invocation without outputs sends a lone end message to reply-to. The
// reply properties follow the contract of invocation.Replies, as the SDK's instance does.
type outputs struct {
	r       *runner
	in      pulsar.Message
	req     invocation.Request
	replies *invocation.Replies
	base    map[string]string // properties every output carries
	held    *plugin.Output
	n       int // outputs sent to the output topic: the EFFECTIVELY_ONCE sequence

	mu      sync.Mutex
	pending int         // sends in flight, plus one until finish is called
	done    func(error) // called once, when pending reaches 0 after finish
	errs    []error
}

func (r *runner) newOutputs(in pulsar.Message, req invocation.Request) *outputs {
	base := map[string]string{}
	if r.f.m.ForwardProperties {
		maps.Copy(base, in.Properties())
	}
	invocation.DropPerInvocation(base)
	base[invocation.InputTopic] = in.Topic()
	base[invocation.InputMessageID] = invocation.MessageID(in)
	return &outputs{r: r, in: in, req: req, replies: invocation.NewReplies(req), base: base, pending: 1}
}

func (o *outputs) add(ctx context.Context, out plugin.Output) error {
	if o.held != nil {
		o.send(ctx, *o.held, false)
	}
	o.held = &out
	return nil
}

// finish sends the held output as the final one when the invocation succeeded, reports the
// end (with failed as the error text when not empty) to reply-to when report is true, and
// calls done with the sends' errors once every send has completed, from the last send's
// callback (or at once when nothing is in flight).
func (o *outputs) finish(ctx context.Context, failed string, report bool, done func(error)) {
	o.mu.Lock()
	o.done = done
	o.mu.Unlock()
	switch {
	case o.held != nil && failed == "":
		o.send(ctx, *o.held, true)
	case o.held != nil:
		o.send(ctx, *o.held, false)
		if report {
			o.end(ctx, failed)
		}
	case report:
		o.end(ctx, failed)
	}
	o.release(nil)
}

// release ends one pending send (or finish's own token) with err.
func (o *outputs) release(err error) {
	o.mu.Lock()
	if err != nil {
		o.errs = append(o.errs, err)
	}
	o.pending--
	last := o.pending == 0
	done, errs := o.done, o.errs
	o.mu.Unlock()
	if last {
		done(errors.Join(errs...))
	}
}

// send publishes out to the output topic and to reply-to: one message, numbered once.
func (o *outputs) send(ctx context.Context, out plugin.Output, final bool) {
	m := o.message(out, o.req.Correlated())
	if o.req.Correlated() {
		o.replies.Output(m.Properties, final, "")
	}
	// A reply-to naming the output topic gets the output once, below: it carries the reply
	// properties already.
	if o.req.ReplyTo != "" && o.req.ReplyTo != o.r.f.m.Output {
		o.publish(ctx, o.req.ReplyTo, m)
	}
	if o.r.f.m.Output == "" {
		if o.req.ReplyTo == "" {
			o.r.h.metrics.unclaimedOutput.WithLabelValues(o.r.f.m.FQFN()).Inc()
		}
		return
	}
	if o.r.f.m.Guarantee == manifest.EffectivelyOnce {
		seq, err := sequenceID(o.in.ID(), o.n)
		if err != nil {
			o.fail(err)
			return
		}
		c := *m // the reply-to copy carries no sequence id
		c.SequenceID = &seq
		m = &c
	}
	o.n++
	o.publish(ctx, o.r.f.m.Output, m)
}

// end sends reply-to the message that ends the invocation without being an output: after
// the last output of a failed invocation (with its error), or alone when there was none.
func (o *outputs) end(ctx context.Context, failed string) {
	if o.req.ReplyTo == "" {
		return
	}
	m := o.message(plugin.Output{}, true)
	o.replies.End(m.Properties, failed)
	o.publish(ctx, o.req.ReplyTo, m)
}

// message builds the message of out. Its properties are not modified once it is published:
// one message goes to both topics.
//
// Without reply properties to stamp (stamp false) and properties of the output's own, the
// message shares the input's base properties: read-only from here on, and one map less per
// output on the hot path.
func (o *outputs) message(out plugin.Output, stamp bool) *pulsar.ProducerMessage {
	props := o.base
	if stamp || len(out.Properties) > 0 {
		// Sized for the base, the output's own and the six reply properties at most.
		props = make(map[string]string, len(o.base)+len(out.Properties)+6)
		maps.Copy(props, o.base)
		maps.Copy(props, out.Properties)
	}
	key := out.Key
	if key == "" {
		key = o.in.Key()
	}
	et := out.EventTime
	if et.IsZero() {
		et = o.in.EventTime()
	}
	return &pulsar.ProducerMessage{Payload: out.Payload, Key: key, OrderingKey: o.in.OrderingKey(), Properties: props, EventTime: et}
}

func (o *outputs) publish(ctx context.Context, topic string, msg *pulsar.ProducerMessage) {
	p := o.r.out
	if p == nil || topic != o.r.f.m.Output {
		var err error
		if p, err = o.r.producer(topic, true); err != nil { // a reply-to topic
			o.fail(err)
			return
		}
	}
	o.mu.Lock()
	o.pending++
	o.mu.Unlock()
	p.SendAsync(ctx, msg, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
		if err != nil {
			err = fmt.Errorf("publishing to %s: %w", topic, err)
		}
		o.release(err)
	})
}

func (o *outputs) fail(err error) {
	o.mu.Lock()
	o.errs = append(o.errs, err)
	o.mu.Unlock()
}
