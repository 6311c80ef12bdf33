package pluginserve

import (
	"context"
	"runtime"
	"sync"

	"github.com/fnhost/fnhost/functions/pf/plugin/pluginpb"
)

// eventQueue carries a pipeline's events from its invocations to its sender. Invocations
// append without a rendezvous and the sender takes everything queued in one frame; it is woken
// only when it is idle, so a lone invocation's events go out at once and concurrent ones share
// frames (and the writes and wake-ups that go with a frame).
type eventQueue struct {
	mu      sync.Mutex
	events  []*pluginpb.PipelineEvent
	spare   []*pluginpb.PipelineEvent // the previous batch, reused once sent
	waiting bool                      // the sender is parked on wake
	closed  bool
	// wake has capacity 1: it is signalled once per idle period (waiting guards it).
	wake chan struct{}
	// space is closed when the sender takes the queued events; nil when nobody waits for room.
	space chan struct{}
}

func newEventQueue() *eventQueue {
	return &eventQueue{wake: make(chan struct{}, 1)}
}

// push queues pe. It waits while outBuffer events are queued (backpressure from the host),
// until ctx or stream ends. pe must not change until the sender has sent it.
func (q *eventQueue) push(ctx, stream context.Context, pe *pluginpb.PipelineEvent) error {
	q.mu.Lock()
	for len(q.events) >= outBuffer {
		if q.space == nil {
			q.space = make(chan struct{})
		}
		space := q.space
		q.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		case <-stream.Done():
			return stream.Err()
		}
		q.mu.Lock()
	}
	q.events = append(q.events, pe)
	q.signal()
	q.mu.Unlock()
	return nil
}

// signal wakes the sender if it is parked. q.mu is held.
func (q *eventQueue) signal() {
	if q.waiting {
		q.waiting = false
		q.wake <- struct{}{}
	}
}

// close makes take return nil once the queue is empty. Called once no invocation pushes.
func (q *eventQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.signal()
}

// take waits for events and returns all that are queued; nil when the queue is closed and
// empty. The batch stays valid until the next call of take.
func (q *eventQueue) take() []*pluginpb.PipelineEvent {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.events) == 0 {
		if q.closed {
			return nil
		}
		q.waiting = true
		q.mu.Unlock()
		<-q.wake
		// Woken by the first event after a pause: let the other invocations that are ready
		// to run queue theirs too, so that they share the frame.
		runtime.Gosched()
		q.mu.Lock()
	}
	batch := q.events
	clear(q.spare)
	q.events, q.spare = q.spare[:0], batch
	if q.space != nil {
		close(q.space)
		q.space = nil
	}
	return batch
}
