package pluginserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/apache/pulsar-client-go/pulsar"
	pulsarlog "github.com/apache/pulsar-client-go/pulsar/log"
)

// ErrNoPulsar is returned by NewOutputMessage when the host gave no Pulsar URL.
var ErrNoPulsar = errors.New("NewOutputMessage needs a Pulsar URL; the host runs embedded")

// producers creates, caches and closes the producers of NewOutputMessage. The Pulsar client is
// created on first use, so a function that never calls NewOutputMessage never connects.
type producers struct {
	url    string
	logger *slog.Logger

	mu      sync.Mutex
	client  pulsar.Client
	byTopic map[string]pulsar.Producer
	closed  bool
}

func (p *producers) get(topic string) (pulsar.Producer, error) {
	if p.url == "" {
		return nil, ErrNoPulsar
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("NewOutputMessage: the plugin is stopping")
	}
	if pr, ok := p.byTopic[topic]; ok {
		return pr, nil
	}
	if p.client == nil {
		c, err := pulsar.NewClient(pulsar.ClientOptions{URL: p.url, Logger: pulsarlog.NewLoggerWithSlog(p.logger)})
		if err != nil {
			return nil, fmt.Errorf("connecting to pulsar %s: %w", p.url, err)
		}
		p.client = c
		p.byTopic = map[string]pulsar.Producer{}
	}
	pr, err := p.client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		return nil, fmt.Errorf("creating a producer for %s: %w", topic, err)
	}
	p.byTopic[topic] = pr
	return pr, nil
}

// close flushes and closes every producer, then the client. Idempotent. ctx bounds each flush.
func (p *producers) close(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	var errs []error
	for topic, pr := range p.byTopic {
		if err := pr.FlushWithCtx(ctx); err != nil {
			errs = append(errs, fmt.Errorf("flushing the producer of %s: %w", topic, err))
		}
		pr.Close()
	}
	if p.client != nil {
		p.client.Close()
	}
	return errors.Join(errs...)
}
