package instance

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
	pb "github.com/fnhost/fnhost/functions/pf/internal/pfproto"
	"github.com/fnhost/fnhost/functions/pf/invocation"
)

// outputMessage builds the message for one output of input in. Precedence of properties,
// lowest first: the forwarded input properties, the output's own, then Pulsar Functions'
// __pfn_input_topic__ and __pfn_input_msg_id__ (never spoofable: `functions trigger` and
// fnhost's trigger match on them).
func outputMessage(in pulsar.Message, out call.Output, forward bool) *pulsar.ProducerMessage {
	props := make(map[string]string, len(in.Properties())+len(out.Properties)+2)
	if forward {
		maps.Copy(props, in.Properties())
		invocation.DropPerInvocation(props)
	}
	invocation.CopyTraceContext(props, in.Properties())
	maps.Copy(props, out.Properties)
	props[invocation.InputTopic] = in.Topic()
	props[invocation.InputMessageID] = invocation.MessageID(in)
	m := &pulsar.ProducerMessage{
		Payload:     out.Payload,
		Key:         out.Key,
		Properties:  props,
		EventTime:   out.EventTime,
		OrderingKey: "",
	}
	if m.Key == "" {
		m.Key = in.Key()
		m.OrderingKey = in.OrderingKey()
	}
	if m.EventTime.IsZero() {
		m.EventTime = in.EventTime()
	}
	return m
}

// producerOptions are the options of every producer of the instance: the output topic's,
// those of FunctionContext.NewOutputMessage and the reply-to topics'. Defaults are Pulsar
// Functions': LZ4, batching with a 10 ms delay.
func producerOptions(topic string, spec *pb.ProducerSpec, info *call.Info) pulsar.ProducerOptions {
	o := pulsar.ProducerOptions{
		Topic:                   topic,
		Properties:              componentProperties(info),
		CompressionType:         pulsar.LZ4,
		BatchingMaxPublishDelay: 10 * time.Millisecond,
	}
	if spec == nil {
		return o
	}
	switch spec.CompressionType {
	case pb.CompressionType_NONE:
		o.CompressionType = pulsar.NoCompression
	case pb.CompressionType_ZLIB:
		o.CompressionType = pulsar.ZLib
	case pb.CompressionType_ZSTD:
		o.CompressionType = pulsar.ZSTD
	default: // LZ4, and SNAPPY, which the Go client lacks
		o.CompressionType = pulsar.LZ4
	}
	if spec.MaxPendingMessages > 0 {
		o.MaxPendingMessages = int(spec.MaxPendingMessages)
	}
	builder := spec.BatchBuilder
	if b := spec.BatchingSpec; b != nil {
		o.DisableBatching = !b.Enabled
		if b.BatchingMaxPublishDelayMs > 0 {
			o.BatchingMaxPublishDelay = time.Duration(b.BatchingMaxPublishDelayMs) * time.Millisecond
		}
		if b.BatchingMaxMessages > 0 {
			o.BatchingMaxMessages = uint(b.BatchingMaxMessages)
		}
		if b.BatchingMaxBytes > 0 {
			o.BatchingMaxSize = uint(b.BatchingMaxBytes)
		}
		if b.BatchBuilder != "" {
			builder = b.BatchBuilder
		}
	}
	if strings.EqualFold(builder, "KEY_BASED") {
		o.BatcherBuilderType = pulsar.KeyBasedBatchBuilder
	}
	return o
}

// replyProducerOptions are the options of a reply-to topic's producer: the output producers'
// (producerOptions), batching for invocation.ReplyBatchingDelay at most.
func replyProducerOptions(topic string, spec *pb.ProducerSpec, info *call.Info) pulsar.ProducerOptions {
	o := producerOptions(topic, spec, info)
	o.BatchingMaxPublishDelay = min(o.BatchingMaxPublishDelay, invocation.ReplyBatchingDelay)
	return o
}

// componentProperties are the producer and consumer properties Pulsar Functions set.
func componentProperties(info *call.Info) map[string]string {
	return map[string]string{
		"application": "pulsar-function",
		"id":          info.FQFN(),
		"instance_id": strconv.Itoa(info.InstanceID),
	}
}

// producers caches one producer per topic for the life of the instance. Safe for concurrent
// use.
type producers struct {
	client  pulsar.Client
	options func(topic string) pulsar.ProducerOptions

	mu     sync.Mutex
	m      map[string]pulsar.Producer
	closed bool
}

var errClosed = errors.New("instance: stopping")

// get returns the producer for topic, creating it on first use. Creation blocks the other
// callers that need a new producer; those with a cached one are not held up for long.
func (p *producers) get(topic string) (pulsar.Producer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errClosed
	}
	if pr, ok := p.m[topic]; ok {
		return pr, nil
	}
	pr, err := p.client.CreateProducer(p.options(topic))
	if err != nil {
		return nil, fmt.Errorf("creating producer for %s: %w", topic, err)
	}
	if p.m == nil {
		p.m = map[string]pulsar.Producer{}
	}
	p.m[topic] = pr
	return pr, nil
}

// flush sends what every producer has batched and waits for it, bounded by ctx.
func (p *producers) flush(ctx context.Context) error {
	p.mu.Lock()
	list := make([]pulsar.Producer, 0, len(p.m))
	for _, pr := range p.m {
		list = append(list, pr)
	}
	p.mu.Unlock()
	var errs []error
	for _, pr := range list {
		if err := pr.FlushWithCtx(ctx); err != nil {
			errs = append(errs, fmt.Errorf("flushing producer for %s: %w", pr.Topic(), err))
		}
	}
	return errors.Join(errs...)
}

// close closes every producer; later gets fail. Idempotent.
func (p *producers) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	for _, pr := range p.m {
		pr.Close()
	}
}

// Publishing retries: a transient failure (timeout, full queue, lost connection) is retried
// this many times in all, with exponential backoff, before the input fails.
const (
	sendAttempts     = 5
	sendBackoffFirst = 200 * time.Millisecond
	sendBackoffMax   = 5 * time.Second
)

// sender publishes outputs asynchronously and retries transient failures.
type sender struct {
	// ctx bounds sends and retry waits; it ends only at the hard stop, after the drain.
	ctx     context.Context
	retries sync.WaitGroup // retry timers waiting to resend
}

// send publishes m on p and calls done exactly once with the final result.
func (s *sender) send(p pulsar.Producer, m *pulsar.ProducerMessage, done func(error)) {
	s.attempt(p, m, 1, done)
}

func (s *sender) attempt(p pulsar.Producer, m *pulsar.ProducerMessage, n int, done func(error)) {
	p.SendAsync(s.ctx, m, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
		if err == nil || n >= sendAttempts || !transient(err) || s.ctx.Err() != nil {
			if err != nil {
				err = fmt.Errorf("publishing to %s (attempt %d): %w", p.Topic(), n, err)
			}
			done(err)
			return
		}
		delay := min(sendBackoffFirst<<(n-1), sendBackoffMax)
		s.retries.Go(func() {
			t := time.NewTimer(delay)
			defer t.Stop()
			select {
			case <-t.C:
				s.attempt(p, m, n+1, done)
			case <-s.ctx.Done():
				done(fmt.Errorf("publishing to %s: stopped while retrying: %w", p.Topic(), err))
			}
		})
	})
}

// permanent are send errors that a retry cannot fix.
var permanent = []error{
	pulsar.ErrMessageTooLarge, pulsar.ErrMetaTooLarge, pulsar.ErrProducerClosed, pulsar.ErrSchema,
	pulsar.ErrInvalidMessage, pulsar.ErrTopicNotfound, pulsar.ErrTopicTerminated, pulsar.ErrProducerFenced,
	pulsar.ErrTransaction, context.Canceled,
}

func transient(err error) bool {
	for _, p := range permanent {
		if errors.Is(err, p) {
			return false
		}
	}
	return true
}

// backoff is the NackBackoffPolicy of fnhost.retryBackoff: first, then doubling, capped.
type backoff struct{ first, max time.Duration }

// Next implements pulsar.NackBackoffPolicy.
func (b backoff) Next(redeliveryCount uint32) time.Duration {
	d := b.first
	for range redeliveryCount {
		if d >= b.max/2 {
			return b.max
		}
		d *= 2
	}
	return min(d, b.max)
}
