package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/fnhost/fnhost/functions/pf/invocation"
	"github.com/fnhost/fnhost/functions/pf/plugin"
	"github.com/fnhost/fnhost/internal/engine"
	"github.com/fnhost/fnhost/internal/manifest"
	"github.com/fnhost/fnhost/internal/producer"
	"github.com/fnhost/fnhost/runtime/pool"
)

// runner feeds one function from Pulsar: one consumer for the function's inputs, the
// function's pool of plugin processes, producers for its outputs, and package engine's loop
// between them (its package doc states the rules).
type runner struct {
	f        *function
	consumer pulsar.Consumer
	sink     *engine.PulsarSink
	engine   *engine.Engine
}

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
	r := &runner{f: f, consumer: c, sink: &engine.PulsarSink{
		Outputs: producer.New(h.client, func(topic string) pulsar.ProducerOptions { return producerOptions(m, topic, false) }, producer.DefaultRetry),
		Replies: producer.New(h.client, func(topic string) pulsar.ProducerOptions { return producerOptions(m, topic, true) }, producer.DefaultRetry),
	}}
	if m.Output != "" {
		_, err := r.sink.Outputs.Get(ctx, m.Output)
		if err == nil && m.Guarantee == manifest.EffectivelyOnce {
			err = checkDeduplication(ctx, h.cfg.AdminURL, m.Output)
		}
		if err != nil {
			r.close(ctx)
			return nil, err
		}
	}
	cfg := engineConfig(m, h.cfg.MaxInFlight, f.metrics, log)
	if h.tracer != nil {
		cfg.Tracer = &consumerTracer{tracer: h.tracer, fqfn: m.FQFN()}
	}
	r.engine, err = engine.New(cfg, poolFunction{f.pool}, r.sink, c)
	if err != nil {
		r.close(ctx)
		return nil, err
	}
	return r, nil
}

// engineConfig is the engine's configuration of m, whose processes run at most maxInFlight
// invocations each: the order follows the subscription type.
func engineConfig(m *manifest.Function, maxInFlight int, metrics *engine.Metrics, log *slog.Logger) engine.Config {
	cfg := engine.Config{
		Function:          m.FQFN(),
		OutputTopic:       m.Output,
		Guarantee:         guarantee(m.Guarantee),
		Lanes:             m.Parallelism * maxInFlight,
		Timeout:           m.Timeout,
		MaxRetries:        m.MaxRetries,
		RetryBackoff:      m.RetryBackoff,
		ForwardProperties: m.ForwardProperties,
		Metrics:           metrics,
		Logger:            log,
	}
	switch m.SubscriptionType {
	case manifest.Failover:
		cfg.Order = engine.Strict
	case manifest.KeyShared:
		cfg.Order = engine.KeyOrdered
	}
	return cfg
}

// guarantee is g in the engine's terms.
func guarantee(g manifest.Guarantee) engine.Guarantee {
	switch g {
	case manifest.AtMostOnce:
		return engine.AtMostOnce
	case manifest.EffectivelyOnce:
		return engine.EffectivelyOnce
	case manifest.Manual:
		return engine.Manual
	default:
		return engine.AtLeastOnce
	}
}

// poolFunction is the engine's Function over a pool of plugin processes.
type poolFunction struct{ p *pool.Pool }

// Invoke implements engine.Function. An invocation that its deadline ended, whether the
// plugin said so or the wait for it did, is a failure of kind deadline: the function's
// timeout is the function's failure (engine rule 3), whichever side noticed first.
func (pf poolFunction) Invoke(ctx context.Context, c *engine.Call, emit func(plugin.Event) error) (plugin.Result, int, error) {
	msg := c.Message
	res, slot, err := pf.p.Invoke(ctx, &plugin.Request{
		Payload: msg.Payload(), Key: msg.Key(), OrderingKey: msg.OrderingKey(), Properties: c.Properties,
		Topic: msg.Topic(), ProducerName: msg.ProducerName(), MessageID: engine.SerializeID(msg.ID()),
		EventTime: msg.EventTime(), PublishTime: msg.PublishTime(), RedeliveryCount: msg.RedeliveryCount(),
		Deadline: c.Deadline,
	}, emit)
	if err != nil && errors.Is(err, context.DeadlineExceeded) && !c.Deadline.IsZero() && ctx.Err() != nil {
		return plugin.Result{Kind: plugin.KindDeadline, Error: err.Error()}, slot, nil
	}
	return res, slot, err
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

// run feeds the function until ctx ends or drain is called.
func (r *runner) run(ctx context.Context) error { return r.engine.Run(ctx) }

// drain stops intake and finishes the inputs taken, bounded by ctx (see engine.Drain).
func (r *runner) drain(ctx context.Context) error { return r.engine.Drain(ctx) }

// close closes the producers and the consumer.
func (r *runner) close(ctx context.Context) {
	if r.engine != nil {
		r.engine.Close()
	}
	if err := r.sink.Close(ctx); err != nil {
		r.f.log.Warn("closing producers", "err", err)
	}
	r.consumer.Close()
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
	defer func() { _ = resp.Body.Close() }() // read to the end below; a close error changes nothing
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
