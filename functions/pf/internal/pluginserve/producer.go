package pluginserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/apache/pulsar-client-go/pulsar"
	pulsarlog "github.com/apache/pulsar-client-go/pulsar/log"

	"github.com/fnhost/fnhost/internal/producer"
)

// ErrNoPulsar is returned by NewOutputMessage when the host gave no Pulsar URL.
var ErrNoPulsar = errors.New("NewOutputMessage needs a Pulsar URL; the host runs embedded")

// producers are the producers of NewOutputMessage: a producer.Cache on a client created on
// first use, so a function that never calls NewOutputMessage never connects.
type producers struct {
	url    string
	logger *slog.Logger

	mu     sync.Mutex
	client pulsar.Client
	cache  *producer.Cache
	closed bool
	// stop ends with close: it bounds the creation of a producer a function waits for.
	stop     context.Context
	stopping context.CancelFunc
}

func newProducers(url string, logger *slog.Logger) *producers {
	p := &producers{url: url, logger: logger}
	p.stop, p.stopping = context.WithCancel(context.Background())
	return p
}

func (p *producers) get(topic string) (pulsar.Producer, error) {
	if p.url == "" {
		return nil, ErrNoPulsar
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errors.New("NewOutputMessage: the plugin is stopping")
	}
	if p.cache == nil {
		c, err := pulsar.NewClient(pulsar.ClientOptions{URL: p.url, Logger: pulsarlog.NewLoggerWithSlog(p.logger)})
		if err != nil {
			p.mu.Unlock()
			return nil, fmt.Errorf("connecting to pulsar %s: %w", p.url, err)
		}
		p.client = c
		p.cache = producer.New(c, func(topic string) pulsar.ProducerOptions { return pulsar.ProducerOptions{Topic: topic} }, producer.Retry{})
	}
	cache := p.cache
	p.mu.Unlock()
	return cache.Get(p.stop, topic)
}

// close flushes and closes every producer, then the client. Idempotent. ctx bounds the
// flushes and the close.
func (p *producers) close(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	p.stopping()
	if p.cache == nil {
		return nil
	}
	err := errors.Join(p.cache.Flush(ctx), p.cache.Close(ctx))
	p.client.Close()
	return err
}
