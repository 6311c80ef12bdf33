package pulsarinvoke

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fnhost/fnhost/trigger"
)

// reply is one reply of an invocation: a message of the reply topic, or an output matched on
// the output topic (fallback).
type reply struct {
	seq     int64
	attempt int // the function's retry count: a higher attempt starts again at seq 0
	final   bool
	errText string // the function's error, on a final reply
	// output is false for an end marker: the empty final message a function sends when it has
	// no (more) output, or that carries its error.
	output bool
	out    trigger.Output
	// The trace context the reply carries (the function invocation's), when it has one.
	traceParent, traceState string
}

// errBacklog fails an invocation whose caller does not take its outputs fast enough.
var errBacklog = errors.New("pulsarinvoke: outputs arrive faster than the caller takes them")

// call is one invocation waiting for its replies. The reply consumer (and the fallback readers)
// deliver; the invoking goroutine takes, in seq order. Safe for concurrent use.
type call struct {
	id       string
	fallback bool  // an output-topic match may answer it
	maxBytes int64 // bound on bytes held for the caller

	signal chan struct{} // capacity 1: "something changed"; a pending signal is enough

	mu      sync.Mutex
	attempt int             // attempt of the replies handed over; older ones are stale
	next    int64           // seq of the next reply to hand over
	early   map[int64]reply // replies that came before the ones preceding them
	ready   []reply         // in seq order, not taken yet
	bytes   int64           // payload bytes in early and ready
	done    bool            // the final reply is in ready (or was taken)
	replied bool            // a reply-to reply arrived: the function speaks the SDK's protocol
	err     error           // the invocation failed in the invoker (closing, backlog)
	key     *msgKey         // the id of the published request, for fallback matching
}

func newCall(id string, fallback bool, maxBytes int64) *call {
	return &call{id: id, fallback: fallback, maxBytes: maxBytes, signal: make(chan struct{}, 1)}
}

func (c *call) notify() {
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

// deliver hands over reply r from the reply topic. Duplicates (a redelivery of a reply, or
// an attempt that died resending seqs already seen), replies of an earlier attempt and replies
// after the final one are ignored. The first reply of a retry (a higher attempt) drops what
// the failed attempt sent and the caller has not taken, and restarts at seq 0. It reports
// whether r was new.
func (c *call) deliver(r reply) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.replied = true
	if c.done || c.err != nil || r.attempt < c.attempt {
		return false
	}
	if r.attempt > c.attempt {
		c.attempt, c.next, c.early, c.ready, c.bytes = r.attempt, 0, nil, nil, 0
	}
	if r.seq < c.next {
		return false
	}
	if _, dup := c.early[r.seq]; dup {
		return false
	}
	if c.early == nil {
		c.early = map[int64]reply{}
	}
	c.early[r.seq] = r
	c.bytes += int64(len(r.out.Payload))
	for {
		x, ok := c.early[c.next]
		if !ok {
			break
		}
		delete(c.early, c.next)
		c.ready = append(c.ready, x)
		c.next++
		if x.final {
			c.done = true
			for _, y := range c.early { // nothing follows a final reply
				c.bytes -= int64(len(y.out.Payload))
			}
			c.early = nil
			break
		}
	}
	if c.bytes > c.maxBytes {
		c.err = fmt.Errorf("%w: more than %d bytes held", errBacklog, c.maxBytes)
		c.early, c.ready, c.bytes = nil, nil, 0
	}
	c.notify()
	return true
}

// deliverFallback hands over an output matched on the output topic: the one and only output,
// final. It is ignored once the function has replied to reply-to (it speaks the protocol, so
// its replies are authoritative) or when the call takes no fallback.
func (c *call) deliverFallback(out trigger.Output) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.fallback || c.replied || c.done || c.err != nil {
		return false
	}
	c.ready = append(c.ready, reply{seq: 0, final: true, output: true, out: out})
	c.bytes += int64(len(out.Payload))
	c.next, c.done, c.early = 1, true, nil
	c.notify()
	return true
}

// fail ends the call with err unless it has already ended.
func (c *call) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && !c.done {
		c.err = err
		c.notify()
	}
}

// take returns the replies ready in seq order and the call's failure, if any. Replies come
// before the failure: the caller hands them over first.
func (c *call) take() ([]reply, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs := c.ready
	c.ready = nil
	for _, r := range rs {
		c.bytes -= int64(len(r.out.Payload))
	}
	return rs, c.err
}

// table holds the calls waiting for replies, by invocation id and by the message id of their
// request. Safe for concurrent use.
type table struct {
	max int

	mu     sync.Mutex
	calls  map[string]*call
	byKey  map[msgKey]*call
	recent *recentOutputs
	closed bool

	dropped  atomic.Uint64 // replies for no waiting call
	matched  atomic.Uint64 // outputs matched on an output topic
	unusable atomic.Uint64 // reply-topic messages without a usable id or seq
}

func newTable(max int) *table {
	return &table{max: max, calls: map[string]*call{}, byKey: map[msgKey]*call{}, recent: newRecentOutputs(1024, 30*time.Second)}
}

var errClosed = fmt.Errorf("%w: the Pulsar invoker is closed", trigger.ErrUnavailable)

// add registers c, or refuses it when MaxPending calls wait (trigger.ErrOverloaded) or the
// table is closed.
func (t *table) add(c *call) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return errClosed
	case len(t.calls) >= t.max:
		return fmt.Errorf("%w: %d invocations wait for replies", trigger.ErrOverloaded, len(t.calls))
	}
	if _, dup := t.calls[c.id]; dup {
		return fmt.Errorf("pulsarinvoke: invocation %s is already waiting", c.id)
	}
	t.calls[c.id] = c
	return nil
}

// remove forgets c; replies for it are dropped from now on.
func (t *table) remove(c *call) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.calls[c.id] == c {
		delete(t.calls, c.id)
	}
	if c.key != nil && t.byKey[*c.key] == c {
		delete(t.byKey, *c.key)
	}
}

// bind records the message id of c's request, for fallback matching, and delivers an output
// that matched it before the id was known (the broker's receipt can be slower than the
// function).
func (t *table) bind(c *call, k msgKey) {
	t.mu.Lock()
	if t.calls[c.id] != c {
		t.mu.Unlock()
		return
	}
	c.key = &k
	t.byKey[k] = c
	out, early := t.recent.take(k)
	t.mu.Unlock()
	if early && c.deliverFallback(out) {
		t.matched.Add(1)
	}
}

// deliver routes reply r to the call of invocation id; a reply for no waiting call is dropped
// and counted.
func (t *table) deliver(id string, r reply) {
	t.mu.Lock()
	c := t.calls[id]
	t.mu.Unlock()
	if c == nil {
		t.dropped.Add(1)
		return
	}
	c.deliver(r)
}

// deliverOutput routes an output-topic message that answers the request with id k (fallback).
// One that matches no call yet is kept a while, in case the request's receipt is late.
func (t *table) deliverOutput(k msgKey, out trigger.Output) {
	t.mu.Lock()
	c := t.byKey[k]
	if c == nil {
		t.recent.put(k, out)
	}
	t.mu.Unlock()
	if c != nil && c.deliverFallback(out) {
		t.matched.Add(1)
	}
}

// close fails every waiting call with err and refuses new ones. Idempotent.
func (t *table) close(err error) {
	t.mu.Lock()
	t.closed = true
	calls := make([]*call, 0, len(t.calls))
	for _, c := range t.calls {
		calls = append(calls, c)
	}
	t.mu.Unlock()
	for _, c := range calls {
		c.fail(err)
	}
}

func (t *table) pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.calls)
}

// recentOutputs keeps the last outputs seen on output topics that matched no call, at most
// limit of them and each for ttl, so that an output that beats its request's receipt still
// finds its call. Not safe for concurrent use (the table's lock guards it).
type recentOutputs struct {
	limit int
	ttl   time.Duration
	m     map[msgKey]recentOutput
	order []msgKey // insertion order, oldest first
}

type recentOutput struct {
	out  trigger.Output
	seen time.Time
}

func newRecentOutputs(limit int, ttl time.Duration) *recentOutputs {
	return &recentOutputs{limit: limit, ttl: ttl, m: map[msgKey]recentOutput{}}
}

func (r *recentOutputs) put(k msgKey, out trigger.Output) {
	now := time.Now()
	for len(r.order) > 0 && (len(r.order) >= r.limit || now.Sub(r.m[r.order[0]].seen) > r.ttl) {
		delete(r.m, r.order[0])
		r.order = r.order[1:]
	}
	if _, ok := r.m[k]; !ok {
		r.order = append(r.order, k)
	}
	r.m[k] = recentOutput{out: out, seen: now}
}

func (r *recentOutputs) take(k msgKey) (trigger.Output, bool) {
	x, ok := r.m[k]
	if !ok || time.Since(x.seen) > r.ttl {
		return trigger.Output{}, false
	}
	delete(r.m, k) // its slot in order goes when it reaches the front
	return x.out, true
}
