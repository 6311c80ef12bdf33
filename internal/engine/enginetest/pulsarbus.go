package enginetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/internal/engine"
	"github.com/fnhost/fnhost/internal/producer"
	"github.com/fnhost/fnhost/internal/pulsartest"
)

// NewPulsarBus returns the Bus of the real standalone (internal/pulsartest finds it): fresh
// topics per test, a real consumer with the client's dead-letter policy, the engine's real
// PulsarSink, and topics read back from their start.
func NewPulsarBus() Bus {
	return func(t *testing.T, o BrokerOptions) Broker {
		t.Helper()
		client := pulsartest.Client(t)
		b := &pulsarBroker{o: o, in: pulsartest.Topic(t), out: pulsartest.Topic(t), reply: pulsartest.Topic(t),
			client: client, acks: map[string]int{}, nacks: map[string]int{}, settled: make(chan string, 1024)}
		ctx, cancel := context.WithCancel(context.Background())
		var bg sync.WaitGroup
		t.Cleanup(func() { cancel(); bg.Wait() })

		opts := pulsar.ConsumerOptions{
			Topic: b.in, SubscriptionName: "fn", Type: pulsar.Shared,
			SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
			NackBackoffPolicy:           quickRetry{},
		}
		if o.MaxDeliveries > 0 {
			dlq := pulsartest.Topic(t)
			opts.DLQ = &pulsar.DLQPolicy{MaxDeliveries: uint32(o.MaxDeliveries), DeadLetterTopic: dlq}
			// Subscribed before anything is dead-lettered: what reaches the dead letters
			// settles its input.
			dc, err := client.Subscribe(pulsar.ConsumerOptions{Topic: dlq, SubscriptionName: "dead",
				SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
			require.NoError(t, err)
			t.Cleanup(dc.Close)
			bg.Go(func() {
				for {
					m, err := dc.Receive(ctx)
					if err != nil {
						return
					}
					b.mu.Lock()
					b.dead = append(b.dead, string(m.Payload()))
					b.mu.Unlock()
					_ = dc.Ack(m) // the test reads b.dead; a lost ack only redelivers to a closed test
					b.settled <- string(m.Payload())
				}
			})
		}
		c, err := client.Subscribe(opts)
		require.NoError(t, err)
		t.Cleanup(c.Close)
		b.consumer = c
		p, err := client.CreateProducer(pulsar.ProducerOptions{Topic: b.in, DisableBatching: true})
		require.NoError(t, err)
		t.Cleanup(p.Close)
		b.producer = p
		opt := func(topic string) pulsar.ProducerOptions {
			return pulsar.ProducerOptions{Topic: topic, BatchingMaxPublishDelay: time.Millisecond}
		}
		b.sink = &engine.PulsarSink{
			Outputs: producer.New(client, opt, producer.DefaultRetry),
			Replies: producer.New(client, opt, producer.DefaultRetry),
		}
		t.Cleanup(func() {
			cctx, cancel := context.WithTimeout(context.Background(), bound)
			defer cancel()
			require.NoError(t, b.sink.Close(cctx))
		})
		return b
	}
}

// quickRetry redelivers a nacked input after 10 ms: the suite waits on every retry.
type quickRetry struct{}

func (quickRetry) Next(uint32) time.Duration { return 10 * time.Millisecond }

type pulsarBroker struct {
	o              BrokerOptions
	in, out, reply string
	client         pulsar.Client
	consumer       pulsar.Consumer
	producer       pulsar.Producer
	sink           *engine.PulsarSink
	mu             sync.Mutex
	acks, nacks    map[string]int
	dead           []string
	settled        chan string
}

func (b *pulsarBroker) Topics() (in, out, reply string) { return b.in, b.out, b.reply }
func (b *pulsarBroker) Source() engine.Source           { return b }
func (b *pulsarBroker) SequenceIDs() bool               { return false }

func (b *pulsarBroker) Sink() engine.Sink {
	if b.o.FailOutput {
		return failing{b.sink, b.out}
	}
	return b.sink
}

// failing fails every send to topic.
type failing struct {
	engine.Sink
	topic string
}

func (f failing) Send(ctx context.Context, topic string, reply bool, m *pulsar.ProducerMessage, done func(error)) {
	if topic == f.topic {
		done(ErrSend)
		return
	}
	f.Sink.Send(ctx, topic, reply, m, done)
}

func (b *pulsarBroker) Add(t testing.TB, m *Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	_, err := b.producer.Send(ctx, &pulsar.ProducerMessage{Payload: m.Data, Key: m.MsgKey, OrderingKey: m.OrderKey,
		Properties: m.Props, EventTime: m.Event})
	require.NoError(t, err)
}

// Receive implements engine.Source.
func (b *pulsarBroker) Receive(ctx context.Context) (pulsar.Message, error) {
	return b.consumer.Receive(ctx)
}

// Ack implements engine.Source.
func (b *pulsarBroker) Ack(m pulsar.Message) error {
	b.mu.Lock()
	b.acks[string(m.Payload())]++
	b.mu.Unlock()
	err := b.consumer.Ack(m)
	b.settled <- string(m.Payload())
	return err
}

// Nack implements engine.Source: past StopAfter the input is acknowledged instead, so that
// "retry forever" ends; on its last delivery the client's policy dead-letters it.
func (b *pulsarBroker) Nack(m pulsar.Message) {
	b.mu.Lock()
	b.nacks[string(m.Payload())]++
	b.mu.Unlock()
	next := int(m.RedeliveryCount()) + 1
	if b.o.StopAfter > 0 && next > b.o.StopAfter {
		_ = b.consumer.Ack(m) // stopping the retries: a failed ack redelivers it to nobody
		b.settled <- string(m.Payload())
		return
	}
	b.consumer.Nack(m)
}

func (b *pulsarBroker) Acks(payload string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.acks[payload]
}

func (b *pulsarBroker) Nacks(payload string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.nacks[payload]
}

func (b *pulsarBroker) Dead(testing.TB) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.dead...)
}

func (b *pulsarBroker) WaitSettled(ctx context.Context, payloads ...string) error {
	return waitSettled(ctx, b.settled, payloads)
}

// Sent reads topic from its start to its end.
func (b *pulsarBroker) Sent(t testing.TB, topic string) []*MessageView {
	t.Helper()
	r, err := b.client.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.EarliestMessageID()})
	require.NoError(t, err)
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	var out []*MessageView
	for r.HasNext() {
		m, err := r.Next(ctx)
		require.NoError(t, err)
		out = append(out, &MessageView{Payload: string(m.Payload()), Key: m.Key(), Props: m.Properties()})
	}
	return out
}
