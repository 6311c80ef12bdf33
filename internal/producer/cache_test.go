package producer

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeProducer fails its first failures sends with err, then succeeds.
type fakeProducer struct {
	pulsar.Producer
	topic    string
	err      error
	failures int32
	sends    atomic.Int32
	closed   atomic.Bool
}

func (p *fakeProducer) Topic() string { return p.topic }

func (p *fakeProducer) SendAsync(_ context.Context, m *pulsar.ProducerMessage, cb func(pulsar.MessageID, *pulsar.ProducerMessage, error)) {
	n := p.sends.Add(1)
	var err error
	if n <= p.failures {
		err = p.err
	}
	go cb(nil, m, err) // the client calls back from its own goroutine
}

func (p *fakeProducer) FlushWithCtx(context.Context) error { return nil }
func (p *fakeProducer) Close()                             { p.closed.Store(true) }

type fakeClient struct {
	mu       sync.Mutex
	created  map[string]int
	fail     error
	producer func(topic string) *fakeProducer
}

func (c *fakeClient) CreateProducer(o pulsar.ProducerOptions) (pulsar.Producer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		err := c.fail
		c.fail = nil
		return nil, err
	}
	c.created[o.Topic]++
	if c.producer != nil {
		return c.producer(o.Topic), nil
	}
	return &fakeProducer{topic: o.Topic}, nil
}

func options(topic string) pulsar.ProducerOptions { return pulsar.ProducerOptions{Topic: topic} }

var quick = Retry{Attempts: 3, First: time.Millisecond, Max: 2 * time.Millisecond}

func send(t *testing.T, c *Cache, topic string) error {
	t.Helper()
	done := make(chan error, 1)
	c.Send(t.Context(), topic, &pulsar.ProducerMessage{Payload: []byte("x")}, func(err error) { done <- err })
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("send not completed")
		return nil
	}
}

func TestGetCachesAndRetriesFailedCreation(t *testing.T) {
	t.Parallel()
	fc := &fakeClient{created: map[string]int{}, fail: errors.New("broker away")}
	c := New(fc, options, quick)
	_, err := c.Get(t.Context(), "a")
	require.Error(t, err, "the first creation fails")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			p, err := c.Get(t.Context(), "a")
			assert.NoError(t, err)
			assert.Equal(t, "a", p.Topic())
		})
	}
	wg.Wait()
	assert.Equal(t, 1, fc.created["a"], "a failed creation is forgotten; a success is cached")
	assert.Equal(t, []string{"a"}, c.Topics())
	require.NoError(t, c.Close(t.Context()))
	_, err = c.Get(t.Context(), "a")
	assert.ErrorIs(t, err, ErrClosed)
	require.NoError(t, c.Close(t.Context()), "idempotent")
}

func TestSendRetriesTransientFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		err      error
		failures int32
		sends    int32
		ok       bool
	}{
		{"transient, then sent", pulsar.ErrSendTimeout, 2, 3, true},
		{"transient every time", pulsar.ErrSendQueueIsFull, 10, 3, false},
		{"permanent", pulsar.ErrMessageTooLarge, 1, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var p *fakeProducer
			fc := &fakeClient{created: map[string]int{}, producer: func(topic string) *fakeProducer {
				p = &fakeProducer{topic: topic, err: tc.err, failures: tc.failures}
				return p
			}}
			c := New(fc, options, quick)
			defer func() { assert.NoError(t, c.Close(t.Context())) }()
			err := send(t, c, "t")
			if tc.ok {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, tc.err)
			}
			assert.Equal(t, tc.sends, p.sends.Load())
		})
	}
}

func TestTransient(t *testing.T) {
	t.Parallel()
	assert.True(t, Transient(pulsar.ErrSendTimeout))
	assert.True(t, Transient(pulsar.ErrSendQueueIsFull))
	assert.False(t, Transient(pulsar.ErrMessageTooLarge))
	assert.False(t, Transient(pulsar.ErrProducerClosed))
	assert.False(t, Transient(ErrClosed))
}
