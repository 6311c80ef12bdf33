package trigger

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// journal is the replay buffer of one invocation's outputs: the last few events, the end of
// the invocation, and a broadcast of changes so live readers follow it. One writer (the
// invocation's emit, then finish), any number of readers.
type journal struct {
	id       string
	fn       Function // the function invoked
	maxEvts  int
	maxBytes int64

	mu     sync.Mutex
	events []Output // contiguous seqs: events[i].Seq == base+i
	base   int64    // seq of events[0]; outputs below it were dropped (or superseded)
	// superseded: the outputs below it belong to failed attempts and are not replayed; a
	// resume from before it is not "too late". 0 for a live journal.
	superseded int64
	// dropped is the attempt of the last dropped output (events[0]'s predecessor).
	dropped int
	next    int64 // seq of the next output
	bytes   int64
	end     *streamEnd // set once the invocation ended
	ended   time.Time
	change  chan struct{} // closed and replaced on every append and at the end
}

// streamEnd is how a stream ends: Err nil for success.
type streamEnd struct {
	Outputs int64 // of the attempt that ended the invocation
	Err     *apiError
	// Attempt is the attempt that ended the invocation: a stream whose last outputs are of
	// another one announces the restart before the end.
	Attempt int
}

func (j *journal) append(o Output) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, o)
	j.next = o.Seq + 1
	j.bytes += int64(len(o.Payload))
	for len(j.events) > 1 && (len(j.events) > j.maxEvts || j.bytes > j.maxBytes) {
		j.bytes -= int64(len(j.events[0].Payload))
		j.dropped = j.events[0].Attempt
		j.events[0] = Output{}
		j.events = j.events[1:]
		j.base++
	}
	close(j.change)
	j.change = make(chan struct{})
}

func (j *journal) finish(end *streamEnd, now time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.end != nil {
		return
	}
	j.end, j.ended = end, now
	close(j.change)
	j.change = make(chan struct{})
}

// since returns the retained outputs after seq after (-1: from the start), the end if the
// invocation ended, and a channel closed at the next change. ok is false when outputs after
// after were already dropped, so an exact replay is impossible.
func (j *journal) since(after int64) (outs []Output, end *streamEnd, change <-chan struct{}, ok bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if after+1 < j.base && j.base > j.superseded {
		return nil, nil, nil, false
	}
	after = max(after, j.base-1)
	if from := after + 1 - j.base; from < int64(len(j.events)) {
		outs = append([]Output(nil), j.events[from:]...)
	}
	return outs, j.end, j.change, true
}

// attemptAt returns the attempt of output seq (-1: before the first output), as far as the
// journal still knows it; a resumed stream starts from it, so it marks only the restarts its
// caller has not seen. -1 means unknown: the stream then marks a restart before what follows.
func (j *journal) attemptAt(seq int64) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	switch i := seq - j.base; {
	case seq < 0 && j.superseded > 0 && len(j.events) > 0:
		return j.events[0].Attempt // nothing seen, and failed attempts are not replayed
	case seq < 0:
		return 0
	case i >= 0 && i < int64(len(j.events)):
		return j.events[i].Attempt
	case i < 0:
		return j.dropped
	case len(j.events) > 0:
		return j.events[len(j.events)-1].Attempt
	default:
		return j.dropped
	}
}

// journals holds the journals of recent invocations, bounded in count and, once ended, in age.
// Expired journals are dropped when a journal is added or looked up; there is no sweeper.
type journals struct {
	limit, maxEvts int
	maxBytes       int64
	ttl            time.Duration
	now            func() time.Time

	mu    sync.Mutex
	byID  map[string]*list.Element // of *journal
	order *list.List               // creation order, oldest first
}

func newJournals(cfg *Config) *journals {
	return &journals{limit: cfg.ReplayInvocations, maxEvts: cfg.ReplayEvents, maxBytes: cfg.ReplayBytes,
		ttl: cfg.ReplayTTL, now: time.Now, byID: map[string]*list.Element{}, order: list.New()}
}

// add starts the journal of invocation id, evicting the oldest journals over the limit.
func (js *journals) add(id string, fn Function) *journal {
	j := &journal{id: id, fn: fn, maxEvts: js.maxEvts, maxBytes: js.maxBytes, change: make(chan struct{})}
	js.mu.Lock()
	defer js.mu.Unlock()
	js.byID[id] = js.order.PushBack(j)
	for js.order.Len() > js.limit {
		js.remove(js.order.Front())
	}
	js.expire()
	return j
}

// get returns the journal of id, or nil.
func (js *journals) get(id string) *journal {
	js.mu.Lock()
	defer js.mu.Unlock()
	js.expire()
	if el, ok := js.byID[id]; ok {
		return el.Value.(*journal)
	}
	return nil
}

// expire drops ended journals older than the TTL from the old end of the list.
func (js *journals) expire() {
	now := js.now()
	for el := js.order.Front(); el != nil; {
		j := el.Value.(*journal)
		j.mu.Lock()
		expired := j.end != nil && now.Sub(j.ended) > js.ttl
		j.mu.Unlock()
		if !expired {
			return
		}
		next := el.Next()
		js.remove(el)
		el = next
	}
}

func (js *journals) remove(el *list.Element) {
	delete(js.byID, el.Value.(*journal).id)
	js.order.Remove(el)
}

// follow calls write for each output after seq after and then end, waiting for live outputs
// while the invocation runs; keepAlive is called every interval of silence. It returns when the
// end was written, ctx is done, or a write fails.
func (j *journal) follow(ctx context.Context, after int64, interval time.Duration,
	write func(Output) error, end func(*streamEnd) error, keepAlive func() error) error {
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		outs, e, change, ok := j.since(after)
		if !ok {
			return end(&streamEnd{Err: newAPIError(410, codeReplayExpired,
				"outputs after %d are no longer in the replay buffer", after)})
		}
		for _, o := range outs {
			if err := write(o); err != nil {
				return err
			}
			after = o.Seq
		}
		if e != nil {
			return end(e)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-change:
		case <-tick:
			if err := keepAlive(); err != nil {
				return err
			}
		}
	}
}
