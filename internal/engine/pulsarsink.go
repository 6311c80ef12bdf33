package engine

import (
	"context"
	"errors"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/fnhost/fnhost/internal/producer"
)

// PulsarSink is the Sink of both launchers: the output topic's producers and the reply-to
// topics' (which batch for a shorter time), each a producer.Cache.
type PulsarSink struct {
	Outputs, Replies *producer.Cache
}

var _ Sink = (*PulsarSink)(nil)

// Send implements Sink.
func (s *PulsarSink) Send(ctx context.Context, topic string, reply bool, m *pulsar.ProducerMessage, done func(error)) {
	c := s.Outputs
	if reply {
		c = s.Replies
	}
	c.Send(ctx, topic, m, done)
}

// Flush implements Sink.
func (s *PulsarSink) Flush(ctx context.Context) error {
	return errors.Join(s.Outputs.Flush(ctx), s.Replies.Flush(ctx))
}

// Close closes both caches, bounded by ctx.
func (s *PulsarSink) Close(ctx context.Context) error {
	return errors.Join(s.Outputs.Close(ctx), s.Replies.Close(ctx))
}
