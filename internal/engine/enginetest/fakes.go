package enginetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/fnhost/fnhost/internal/engine"
)

// Message is a pulsar.Message with chosen fields; the methods the engine and the launchers do
// not call are those of the nil embedded interface (they panic).
type Message struct {
	pulsar.Message
	TopicName    string
	Props        map[string]string
	Data         []byte
	MsgKey       string
	OrderKey     string
	MsgID        pulsar.MessageID
	Event        time.Time
	Redeliveries uint32
}

// Topic implements pulsar.Message.
func (m *Message) Topic() string { return m.TopicName }

// Properties implements pulsar.Message.
func (m *Message) Properties() map[string]string { return m.Props }

// Payload implements pulsar.Message.
func (m *Message) Payload() []byte { return m.Data }

// Key implements pulsar.Message.
func (m *Message) Key() string { return m.MsgKey }

// OrderingKey implements pulsar.Message.
func (m *Message) OrderingKey() string { return m.OrderKey }

// ID implements pulsar.Message.
func (m *Message) ID() pulsar.MessageID { return m.MsgID }

// EventTime implements pulsar.Message.
func (m *Message) EventTime() time.Time { return m.Event }

// PublishTime implements pulsar.Message.
func (m *Message) PublishTime() time.Time { return m.Event }

// ProducerName implements pulsar.Message.
func (m *Message) ProducerName() string { return "test-producer" }

// RedeliveryCount implements pulsar.Message.
func (m *Message) RedeliveryCount() uint32 { return m.Redeliveries }

// IsReplicated implements pulsar.Message.
func (m *Message) IsReplicated() bool { return false }

// fakeTopics are the topics of the fakes.
const (
	fakeIn    = "persistent://public/default/in"
	fakeOut   = "persistent://public/default/out"
	fakeReply = "persistent://public/default/reply"
)

// NewFakeBus returns the Bus of fakes: a source over a queue that emulates the broker's
// redelivery and the client's dead-letter policy (a nacked input comes back with its
// redelivery count one higher, or goes to the dead letters once MaxDeliveries deliveries are
// spent), and a sink that keeps what it is sent.
func NewFakeBus() Bus {
	return func(_ *testing.T, o BrokerOptions) Broker {
		f := &fake{o: o, queue: make(chan *Message, o.Capacity), acks: map[string]int{}, nacks: map[string]int{},
			settled: make(chan string, o.Capacity*8), msgs: map[string][]*pulsar.ProducerMessage{}}
		return f
	}
}

type fake struct {
	o     BrokerOptions
	queue chan *Message

	mu          sync.Mutex
	acks, nacks map[string]int // by payload
	dead        []string
	nextEntry   int64
	settled     chan string // payloads settled for good
	msgs        map[string][]*pulsar.ProducerMessage
}

var (
	_ engine.Source = (*fake)(nil)
	_ engine.Sink   = (*fake)(nil)
)

func (f *fake) Topics() (in, out, reply string) { return fakeIn, fakeOut, fakeReply }
func (f *fake) Source() engine.Source           { return f }
func (f *fake) Sink() engine.Sink               { return f }
func (f *fake) SequenceIDs() bool               { return true }

func (f *fake) Add(_ testing.TB, m *Message) {
	f.mu.Lock()
	f.nextEntry++
	if m.MsgID == nil {
		m.MsgID = pulsar.NewMessageID(7, f.nextEntry, -1, 0)
	}
	if m.TopicName == "" {
		m.TopicName = fakeIn
	}
	f.mu.Unlock()
	f.queue <- m
}

// Receive implements engine.Source.
func (f *fake) Receive(ctx context.Context) (pulsar.Message, error) {
	select {
	case m := <-f.queue:
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Ack implements engine.Source.
func (f *fake) Ack(m pulsar.Message) error {
	f.mu.Lock()
	f.acks[string(m.Payload())]++
	f.mu.Unlock()
	f.settled <- string(m.Payload())
	return nil
}

// Nack implements engine.Source.
func (f *fake) Nack(m pulsar.Message) {
	msg := m.(*Message)
	f.mu.Lock()
	f.nacks[string(msg.Data)]++
	next := int(msg.Redeliveries) + 1
	dead := f.o.MaxDeliveries > 0 && next >= f.o.MaxDeliveries
	stopped := f.o.StopAfter > 0 && next > f.o.StopAfter
	if dead {
		f.dead = append(f.dead, string(msg.Data))
	}
	f.mu.Unlock()
	if dead || stopped {
		f.settled <- string(msg.Data)
		return
	}
	c := *msg
	c.Redeliveries = uint32(next)
	c.Props = maps.Clone(msg.Props)
	f.queue <- &c
}

func (f *fake) Acks(payload string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.acks[payload]
}

func (f *fake) Nacks(payload string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nacks[payload]
}

func (f *fake) Dead(testing.TB) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.dead...)
}

func (f *fake) WaitSettled(ctx context.Context, payloads ...string) error {
	return waitSettled(ctx, f.settled, payloads)
}

// waitSettled takes payloads from settled until each of payloads came (as often as listed).
func waitSettled(ctx context.Context, settled <-chan string, payloads []string) error {
	want := map[string]int{}
	for _, p := range payloads {
		want[p]++
	}
	for len(want) > 0 {
		select {
		case p := <-settled:
			if want[p] > 0 {
				want[p]--
				if want[p] == 0 {
					delete(want, p)
				}
			}
		case <-ctx.Done():
			return fmt.Errorf("inputs not settled: %v: %w", want, ctx.Err())
		}
	}
	return nil
}

// ErrSend is the error of a send to a failing topic.
var ErrSend = errors.New("enginetest: send failed")

// Send implements engine.Sink. It completes on another goroutine, as the client's callback.
func (f *fake) Send(_ context.Context, topic string, _ bool, m *pulsar.ProducerMessage, done func(error)) {
	failed := f.o.FailOutput && topic == fakeOut
	f.mu.Lock()
	if !failed {
		f.msgs[topic] = append(f.msgs[topic], m)
	}
	f.mu.Unlock()
	var err error
	if failed {
		err = ErrSend
	}
	go done(err) // the client calls back from its own goroutine; done settles and returns
}

// Flush implements engine.Sink.
func (f *fake) Flush(context.Context) error { return nil }

func (f *fake) Sent(_ testing.TB, topic string) []*MessageView {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*MessageView
	for _, m := range f.msgs[topic] {
		out = append(out, &MessageView{Payload: string(m.Payload), Key: m.Key, Props: m.Properties, Seq: m.SequenceID})
	}
	return out
}
