package pulsarinvoke

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	pulsarlog "github.com/apache/pulsar-client-go/pulsar/log"
	"go.opentelemetry.io/otel/trace"

	"github.com/fnhost/fnhost/functions/pf/invocation"
	"github.com/fnhost/fnhost/internal/sleep"
	"github.com/fnhost/fnhost/trigger"
)

// Invoker is the trigger's Invoker and Publisher over Pulsar topics. Create it with New and
// release it with Close.
type Invoker struct {
	cfg       Config
	log       *slog.Logger
	client    pulsar.Client
	ownClient bool
	consumer  pulsar.Consumer
	catalog   *catalog
	table     *table
	producers *producers
	health    *health
	watchers  *watchers
	tracer    trace.Tracer // nil: tracing off

	stop      context.CancelFunc // ends the reply loop and the readers
	loops     sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

var (
	_ trigger.Invoker   = (*Invoker)(nil)
	_ trigger.Publisher = (*Invoker)(nil)
)

// New connects to Pulsar (unless cfg.Client is given), subscribes to the reply topic and
// returns a ready Invoker. ctx bounds the start.
func New(ctx context.Context, cfg Config) (*Invoker, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	inv := &Invoker{cfg: cfg, log: cfg.Logger, client: cfg.Client, table: newTable(cfg.MaxPending), catalog: newCatalog(&cfg)}
	if cfg.TracerProvider != nil {
		inv.tracer = cfg.TracerProvider.Tracer(tracerName)
	}
	if inv.client == nil {
		c, err := pulsar.NewClient(pulsar.ClientOptions{
			URL: cfg.ServiceURL, ConnectionTimeout: 5 * time.Second, OperationTimeout: 10 * time.Second,
			Logger: pulsarlog.NewLoggerWithSlog(cfg.Logger),
		})
		if err != nil {
			return nil, fmt.Errorf("pulsarinvoke: connecting to %s: %w", cfg.ServiceURL, err)
		}
		inv.client, inv.ownClient = c, true
	}
	inv.health = &health{interval: cfg.ProbeInterval, now: time.Now}
	inv.producers = &producers{client: inv.client, health: inv.health, m: map[string]*producerEntry{}, options: inv.producerOptions,
		sendBound: 2 * cfg.SendTimeout}

	// Subscribe in a goroutine: Subscribe takes no ctx, and a broker that does not answer must
	// not hold New beyond ctx.
	type subscribed struct {
		c   pulsar.Consumer
		err error
	}
	done := make(chan subscribed, 1) // buffered: the goroutine never blocks
	go func() {
		c, err := inv.client.Subscribe(pulsar.ConsumerOptions{
			Topic: cfg.ReplyTopic, SubscriptionName: cfg.Subscription, Type: pulsar.Exclusive,
			SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest, ReceiverQueueSize: 2000,
			Name: "fnhost-trigger-replies",
		})
		done <- subscribed{c, err}
	}()
	var s subscribed
	select {
	case s = <-done:
	case <-ctx.Done():
		go func() { // close what the late Subscribe returns
			if s := <-done; s.c != nil {
				s.c.Close()
			}
			inv.closeClient()
		}()
		return nil, fmt.Errorf("pulsarinvoke: subscribing to %s: %w", cfg.ReplyTopic, ctx.Err())
	}
	if s.err != nil {
		inv.closeClient()
		return nil, fmt.Errorf("pulsarinvoke: subscribing to %s: %w", cfg.ReplyTopic, s.err)
	}
	inv.consumer = s.c

	loopCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	inv.stop = stop
	inv.watchers = newWatchers(loopCtx, inv.client, inv.table, inv.log, cfg.FallbackIdle)
	inv.loops.Go(func() { inv.receive(loopCtx) })
	inv.log.Info("pulsar invoker ready", "reply_topic", cfg.ReplyTopic, "subscription", cfg.Subscription)
	return inv, nil
}

func (inv *Invoker) closeClient() {
	if inv.ownClient {
		inv.client.Close()
	}
}

func (inv *Invoker) producerOptions(topic string) pulsar.ProducerOptions {
	return pulsar.ProducerOptions{
		Topic: topic, SendTimeout: inv.cfg.SendTimeout, BatchingMaxPublishDelay: inv.cfg.BatchingDelay,
		Properties: map[string]string{"application": "fnhost-trigger"},
	}
}

// ReplyTopic returns the topic this invoker receives replies on.
func (inv *Invoker) ReplyTopic() string { return inv.cfg.ReplyTopic }

// Stats are counters of an Invoker.
type Stats struct {
	// Pending is the number of invocations waiting for replies.
	Pending int
	// Dropped counts replies that arrived for no waiting invocation (unknown, finished or
	// expired), and reply-topic messages without an invocation id or seq.
	Dropped uint64
	// FallbackMatched counts outputs matched on an output topic (functions not built with
	// fnhost's SDK).
	FallbackMatched uint64
	// Unavailable is true while publishing fails (the invoker answers ErrUnavailable at once).
	Unavailable bool
	// FallbackReaders is the number of output topics read for the fallback now (idle ones are
	// closed after Config.FallbackIdle).
	FallbackReaders int
}

// Stats returns the invoker's counters.
func (inv *Invoker) Stats() Stats {
	return Stats{
		Pending: inv.table.pending(), Dropped: inv.table.dropped.Load() + inv.table.unusable.Load(),
		FallbackMatched: inv.table.matched.Load(), Unavailable: inv.health.isDown(),
		FallbackReaders: inv.watchers.readers(),
	}
}

// Ready reports an error while publishing to Pulsar fails: for the trigger's /readyz.
func (inv *Invoker) Ready(context.Context) error {
	if inv.health.isDown() {
		return errors.New("publishing to Pulsar fails")
	}
	return nil
}

// Invoke implements trigger.Invoker: it publishes req to fn's input topic with the correlation
// properties and hands over the replies that come back on the reply topic, in seq order, until
// the final one (see the package doc for the fallback on the output topic).
func (inv *Invoker) Invoke(ctx context.Context, fn trigger.Function, req *trigger.Request, emit func(trigger.Output) error) (trigger.Result, error) {
	// The deadline bounds the call, whether or not ctx carries it (a synchronous one's does not).
	if d, ok := ctx.Deadline(); !req.Deadline.IsZero() && (!ok || d.After(req.Deadline)) {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, req.Deadline)
		defer cancel()
	}
	t, err := inv.catalog.lookup(ctx, fn)
	if err != nil {
		return trigger.Result{}, err
	}
	if t.input == "" {
		return trigger.Result{}, fmt.Errorf("%s consumes a topics pattern only; publish to one of its topics with POST /v1/topics/…", fn)
	}
	c := newCall(req.ID, inv.fallback(t), inv.cfg.MaxBufferedBytes)
	// Registered before publishing: a reply can never beat its call.
	if err := inv.table.add(c); err != nil {
		return trigger.Result{}, err
	}
	defer inv.table.remove(c)
	if c.fallback {
		release, err := inv.watchers.ensure(ctx, t.info.Output)
		defer release()
		if err != nil {
			if ctx.Err() != nil {
				return trigger.Result{}, ctx.Err()
			}
			inv.log.Warn("output-topic fallback unavailable; waiting for reply-to replies only", "function", fn.String(), "topic", t.info.Output, "err", err)
		}
	}
	msg := inv.request(req)
	sendCtx, span := inv.traceSend(ctx, t.input, fn.String(), req.ID, msg)
	id, err := inv.producers.send(sendCtx, t.input, msg)
	span.end(id, err)
	if err != nil {
		return trigger.Result{}, fmt.Errorf("invocation %s of %s: %w", req.ID, fn, err)
	}
	if c.fallback {
		inv.table.bind(c, keyOf(id))
	}
	return inv.wait(ctx, fn, req, c, emit)
}

// wait hands c's replies to emit until the final one, a failure, or ctx's end.
func (inv *Invoker) wait(ctx context.Context, fn trigger.Function, req *trigger.Request, c *call, emit func(trigger.Output) error) (res trigger.Result, err error) {
	rspan := receiveSpan{inv: inv, ctx: ctx, fn: fn.String(), id: req.ID}
	defer func() { rspan.end(res, err) }()
	n := 0
	for {
		select {
		case <-c.signal:
		case <-ctx.Done():
			return trigger.Result{Outputs: n}, fmt.Errorf("invocation %s of %s: waiting for replies: %w", req.ID, fn, ctx.Err())
		}
		rs, err := c.take()
		for _, r := range rs {
			rspan.got(r)
			if r.output {
				if err := emit(r.out); err != nil {
					return trigger.Result{Outputs: n}, fmt.Errorf("invocation %s of %s: output %d: %w", req.ID, fn, n, err)
				}
				n++
			}
			if !r.final {
				continue
			}
			res := trigger.Result{Outputs: n, Attempt: r.attempt}
			if r.errText != "" {
				kind := trigger.KindUser
				// A function that fails once the deadline has passed failed because of it.
				if !req.Deadline.IsZero() && !time.Now().Before(req.Deadline) {
					kind = trigger.KindDeadline
				}
				res.Err = &trigger.FunctionError{Kind: kind, Message: r.errText}
			}
			return res, nil
		}
		if err != nil {
			return trigger.Result{Outputs: n}, fmt.Errorf("invocation %s of %s: %w", req.ID, fn, err)
		}
	}
}

// fallback reports whether t's output topic is watched for its outputs.
func (inv *Invoker) fallback(t *target) bool {
	if t.info.Output == "" {
		return false
	}
	mode, ok := inv.cfg.FallbackFor[t.info.Function.String()]
	if !ok {
		mode = inv.cfg.Fallback
	}
	switch mode {
	case FallbackOn:
		return true
	case FallbackOff:
		return false
	default:
		return !t.manifest
	}
}

// request builds the input message of req.
func (inv *Invoker) request(req *trigger.Request) *pulsar.ProducerMessage {
	props := make(map[string]string, len(req.Properties)+6)
	maps.Copy(props, req.Properties)
	props[invocation.ID] = req.ID
	props[invocation.ReplyTo] = inv.cfg.ReplyTopic
	if !req.Deadline.IsZero() {
		props[invocation.Deadline] = strconv.FormatInt(req.Deadline.UnixMilli(), 10)
	}
	set := func(k, v string) {
		if v != "" {
			props[k] = v
		}
	}
	set(invocation.ContentType, req.ContentType)
	set(invocation.TraceParent, req.TraceParent)
	set(invocation.TraceState, req.TraceState)
	return &pulsar.ProducerMessage{Payload: req.Payload, Key: req.Key, Properties: props, EventTime: time.Now()}
}

// Publish implements trigger.Publisher: it hands msg to the topic's producer and returns; a
// failed send is logged.
func (inv *Invoker) Publish(ctx context.Context, topic trigger.Topic, msg trigger.Message) error {
	props := make(map[string]string, len(msg.Properties)+3)
	maps.Copy(props, msg.Properties)
	if msg.ContentType != "" {
		props[invocation.ContentType] = msg.ContentType
	}
	if msg.TraceParent != "" {
		props[invocation.TraceParent] = msg.TraceParent
	}
	if msg.TraceState != "" {
		props[invocation.TraceState] = msg.TraceState
	}
	name := topic.String()
	m := &pulsar.ProducerMessage{Payload: msg.Payload, Key: msg.Key, Properties: props, EventTime: time.Now()}
	ctx, span := inv.traceSend(ctx, name, "", "", m)
	err := inv.producers.sendAsync(ctx, name, m, func(id pulsar.MessageID, err error) {
		span.end(id, err)
		if err != nil {
			inv.log.Warn("publishing an event", "topic", name, "err", err)
		}
	})
	if err != nil {
		span.end(nil, err) // not handed over: the callback never runs
		return fmt.Errorf("publishing to %s: %w", name, err)
	}
	return nil
}

// Functions implements trigger.Invoker: the manifests' functions, then those the admin API
// lists in the configured namespaces. When the admin API fails, the manifests' functions are
// still listed and the failure is logged.
func (inv *Invoker) Functions(ctx context.Context) ([]trigger.FunctionInfo, error) {
	fis, err := inv.catalog.functions(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if len(fis) == 0 {
			return nil, err
		}
		inv.log.Warn("listing deployed functions", "err", err)
	}
	return fis, nil
}

// receive is the reply loop: it routes each reply-topic message to its call, until ctx ends.
func (inv *Invoker) receive(ctx context.Context) {
	for {
		m, err := inv.consumer.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			inv.log.Warn("receiving replies", "topic", inv.cfg.ReplyTopic, "err", err)
			if !sleep.For(ctx, time.Second) {
				return
			}
			continue
		}
		if id, r, ok := parseReply(m); ok {
			inv.table.deliver(id, r)
		} else {
			inv.table.unusable.Add(1)
			inv.log.Debug("ignoring a reply without invocation id or seq", "message_id", m.ID().String())
		}
		if err := inv.consumer.Ack(m); err != nil {
			// A reply that is not acknowledged comes again after a reconnect and is then
			// dropped as a duplicate or as unknown: nothing to do but tell.
			inv.log.Debug("acknowledging a reply", "message_id", m.ID().String(), "err", err)
		}
	}
}

// parseReply reads a reply-topic message.
func parseReply(m pulsar.Message) (string, reply, bool) {
	p, ok := invocation.ParseReply(m.Properties())
	if !ok {
		return "", reply{}, false
	}
	props := m.Properties()
	r := reply{seq: p.Seq, attempt: p.Attempt, final: p.Final, errText: p.Error, output: p.Output,
		traceParent: props[invocation.TraceParent], traceState: props[invocation.TraceState]}
	if r.output {
		r.out = outputOf(m)
		r.out.Attempt = p.Attempt
	}
	return p.ID, r, true
}

// outputOf is the trigger's view of an output message: correlation, Pulsar Functions and
// trace properties are not the function's and are left out.
func outputOf(m pulsar.Message) trigger.Output {
	props := m.Properties()
	out := trigger.Output{Payload: m.Payload(), Key: m.Key(), ContentType: props[invocation.ContentType]}
	for k, v := range props {
		if strings.HasPrefix(k, "fnhost-") || strings.HasPrefix(k, "__pfn_") ||
			k == invocation.ContentType || k == invocation.TraceParent || k == invocation.TraceState {
			continue
		}
		if out.Properties == nil {
			out.Properties = make(map[string]string, len(props))
		}
		out.Properties[k] = v
	}
	return out
}

// Close fails the waiting invocations with trigger.ErrUnavailable, stops the reply consumer
// and the output-topic readers, flushes and closes the producers (bounded by ctx), and closes
// the client it created. With the default reply topic it unsubscribes, so that the broker
// deletes the topic. Idempotent; later calls return the first one's result.
func (inv *Invoker) Close(ctx context.Context) error {
	inv.closeOnce.Do(func() {
		inv.table.close(errClosed)
		inv.stop()
		var errs []error
		waited := make(chan struct{})
		go func() { inv.loops.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("pulsarinvoke: the reply loop did not stop: %w", ctx.Err()))
		}
		if err := inv.watchers.close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("pulsarinvoke: %w", err))
		}
		if err := inv.producers.close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("pulsarinvoke: %w", err))
		}
		if inv.cfg.ownReplyTopic {
			if err := inv.consumer.Unsubscribe(); err != nil {
				errs = append(errs, fmt.Errorf("pulsarinvoke: unsubscribing from %s: %w", inv.cfg.ReplyTopic, err))
			}
		}
		inv.consumer.Close()
		inv.closeClient()
		inv.closeErr = errors.Join(errs...)
	})
	return inv.closeErr
}
