package enginetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
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

// Source is an engine.Source over a queue, which emulates the broker's redelivery and the
// client's dead-letter policy: a nacked input comes back with its redelivery count one higher,
// or, once MaxDeliveries deliveries are spent (0: never), goes to the dead letters.
type Source struct {
	// MaxDeliveries is the dead-letter policy's bound; 0 redelivers forever.
	MaxDeliveries int
	// StopAfter bounds the redeliveries a test lets happen (0: none bound): a nack past it
	// is recorded and not redelivered, so that "retry forever" ends.
	StopAfter int

	queue chan *Message

	mu          sync.Mutex
	acks, nacks map[string]int // by payload
	dead        []*Message
	nextEntry   int64
	settled     chan string // payloads, on every ack, dead letter or stopped nack
}

// NewSource returns a source whose queue holds up to capacity inputs.
func NewSource(capacity int) *Source {
	return &Source{queue: make(chan *Message, capacity), acks: map[string]int{}, nacks: map[string]int{},
		settled: make(chan string, capacity*8)}
}

// Add queues an input with payload and properties (a new message id each).
func (s *Source) Add(m *Message) {
	s.mu.Lock()
	s.nextEntry++
	if m.MsgID == nil {
		m.MsgID = pulsar.NewMessageID(7, s.nextEntry, -1, 0)
	}
	if m.TopicName == "" {
		m.TopicName = "persistent://public/default/in"
	}
	s.mu.Unlock()
	s.queue <- m
}

// Receive implements engine.Source.
func (s *Source) Receive(ctx context.Context) (pulsar.Message, error) {
	select {
	case m := <-s.queue:
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Ack implements engine.Source.
func (s *Source) Ack(m pulsar.Message) error {
	s.mu.Lock()
	s.acks[string(m.Payload())]++
	s.mu.Unlock()
	s.settled <- string(m.Payload())
	return nil
}

// Nack implements engine.Source.
func (s *Source) Nack(m pulsar.Message) {
	msg := m.(*Message)
	s.mu.Lock()
	s.nacks[string(msg.Data)]++
	next := int(msg.Redeliveries) + 1
	dead := s.MaxDeliveries > 0 && next >= s.MaxDeliveries
	stopped := s.StopAfter > 0 && next > s.StopAfter
	if dead {
		s.dead = append(s.dead, msg)
	}
	s.mu.Unlock()
	if dead || stopped {
		s.settled <- string(msg.Data)
		return
	}
	c := *msg
	c.Redeliveries = uint32(next)
	c.Props = maps.Clone(msg.Props)
	s.queue <- &c
}

// Acks is how often the input with payload was acknowledged.
func (s *Source) Acks(payload string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acks[payload]
}

// Nacks is how often the input with payload was negatively acknowledged.
func (s *Source) Nacks(payload string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nacks[payload]
}

// Dead returns the payloads moved to the dead letters.
func (s *Source) Dead() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, m := range s.dead {
		out = append(out, string(m.Data))
	}
	return out
}

// WaitSettled waits until payload was settled for good (acked, dead-lettered, or nacked past
// StopAfter), or fails after a bound.
func (s *Source) WaitSettled(ctx context.Context, payloads ...string) error {
	want := map[string]int{}
	for _, p := range payloads {
		want[p]++
	}
	for len(want) > 0 {
		select {
		case p := <-s.settled:
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

// Sink is an engine.Sink that keeps what it was sent, per topic, and fails the topics in
// Fail.
type Sink struct {
	mu   sync.Mutex
	msgs map[string][]*pulsar.ProducerMessage
	fail map[string]bool
}

// NewSink returns an empty sink; sends to the topics fail fail.
func NewSink(fail ...string) *Sink {
	s := &Sink{msgs: map[string][]*pulsar.ProducerMessage{}, fail: map[string]bool{}}
	for _, t := range fail {
		s.fail[t] = true
	}
	return s
}

// ErrSend is the error of a send to a failing topic.
var ErrSend = errors.New("enginetest: send failed")

// Send implements engine.Sink. It completes asynchronously, as the client does.
func (s *Sink) Send(_ context.Context, topic string, _ bool, m *pulsar.ProducerMessage, done func(error)) {
	s.mu.Lock()
	failed := s.fail[topic]
	if !failed {
		s.msgs[topic] = append(s.msgs[topic], m)
	}
	s.mu.Unlock()
	var err error
	if failed {
		err = ErrSend
	}
	go done(err) // the client's callback goroutine; done settles and returns
}

// Flush implements engine.Sink.
func (s *Sink) Flush(context.Context) error { return nil }

// To returns what was sent to topic, in order.
func (s *Sink) To(topic string) []*pulsar.ProducerMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*pulsar.ProducerMessage(nil), s.msgs[topic]...)
}

var _ engine.Source = (*Source)(nil)
var _ engine.Sink = (*Sink)(nil)
