package pluginserve

import (
	"context"
	"sync"
	"time"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
)

// invocationCtx is the context of one invocation: the stream's values, the invocation's
// deadline, and its end by the host's Cancel, by the stream's end, or when the invocation is
// over.
//
// context.WithCancelCause and WithDeadlineCause would register a child with the stream's
// context, start a timer and allocate four objects for every invocation: a quarter of an
// echo plugin's CPU under load. Most functions never wait on Done, so invocationCtx makes its
// channel, its timer and its registration with the stream only when Done is first called;
// until then Err works the state out from the clock and the stream.
//
// context.Cause of it, or of a context derived from it, is its Err (DeadlineExceeded or
// Canceled): the specific causes stay inside the package (cause).
//
// Its zero value is not usable: init it first. It lives in the invocation's record.
type invocationCtx struct {
	values   context.Context // the stream's context without its cancellation: values only
	stream   context.Context // its end ends the invocation
	deadline time.Time       // zero for none

	mu    sync.Mutex
	err   error         // context.Canceled or context.DeadlineExceeded once ended
	why   error         // why it ended: errCanceled, call.ErrDeadline, the stream's cause…
	done  chan struct{} // made by the first Done, closed at the end
	timer *time.Timer   // fires at the deadline; started by the first Done
	stop  func() bool   // undoes the registration with the stream; set by the first Done
	// afters are the functions of contexts derived from c, run at its end (AfterFunc).
	afters []*afterFunc
}

var _ context.Context = (*invocationCtx)(nil)

// init prepares c. values is stream without its cancellation (context.WithoutCancel), made
// once per stream by the caller: through it context.Cause finds no cancelCtx of the stream's
// and reports c's own Err.
func (c *invocationCtx) init(values, stream context.Context, deadline time.Time) {
	c.values, c.stream, c.deadline = values, stream, deadline
}

// Deadline implements context.Context.
func (c *invocationCtx) Deadline() (time.Time, bool) {
	if d, ok := c.stream.Deadline(); ok && (c.deadline.IsZero() || d.Before(c.deadline)) {
		return d, true
	}
	return c.deadline, !c.deadline.IsZero()
}

// Value implements context.Context.
func (c *invocationCtx) Value(key any) any { return c.values.Value(key) }

// Err implements context.Context.
func (c *invocationCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.check()
	return c.err
}

// Done implements context.Context. The first call starts what closes the channel on time.
func (c *invocationCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.arm()
	return c.done
}

// AfterFunc lets contexts derived from c (context.WithCancel, WithTimeout…) follow its end
// without a goroutine each, as they follow the standard library's contexts: f runs in a
// goroutine of its own once c has ended.
func (c *invocationCtx) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.arm()
	a := &afterFunc{f: f}
	if c.err != nil {
		a.ran = true
		go f()
	} else {
		c.afters = append(c.afters, a)
	}
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		stopped := !a.ran
		a.ran = true
		return stopped
	}
}

type afterFunc struct {
	f   func()
	ran bool // run or stopped; under the context's mu
}

// String implements fmt.Stringer, so that printing c reads nothing unlocked.
func (c *invocationCtx) String() string { return "pluginserve.invocationCtx" }

// arm makes the Done channel and starts what closes it: a timer for the deadline and a
// registration with the stream. Once is enough. c.mu is held.
func (c *invocationCtx) arm() {
	if c.done != nil {
		return
	}
	c.done = make(chan struct{})
	if c.check(); c.err != nil {
		close(c.done) // it ended before anyone asked
		return
	}
	if !c.deadline.IsZero() {
		c.timer = time.AfterFunc(time.Until(c.deadline), func() { c.end(context.DeadlineExceeded, call.ErrDeadline) })
	}
	c.stop = context.AfterFunc(c.stream, func() { c.end(c.stream.Err(), context.Cause(c.stream)) })
}

// cause reports why c ended; nil while it runs.
func (c *invocationCtx) cause() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.check()
	return c.why
}

// cancel ends c with cause, unless it has ended already.
func (c *invocationCtx) cancel(cause error) { c.end(context.Canceled, cause) }

func (c *invocationCtx) end(err, cause error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endLocked(err, cause)
}

// check ends c if its deadline passed or its stream ended. c.mu is held.
func (c *invocationCtx) check() {
	switch {
	case c.err != nil:
	case c.stream.Err() != nil:
		c.endLocked(c.stream.Err(), context.Cause(c.stream))
	case !c.deadline.IsZero() && !time.Now().Before(c.deadline):
		c.endLocked(context.DeadlineExceeded, call.ErrDeadline)
	}
}

// endLocked ends c once: records why, closes Done, stops the timer and the registration
// (neither waits for its function, which takes c.mu). c.mu is held.
func (c *invocationCtx) endLocked(err, cause error) {
	if c.err != nil {
		return
	}
	c.err, c.why = err, cause
	if c.done != nil {
		close(c.done)
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.stop != nil {
		c.stop()
	}
	for _, a := range c.afters {
		if !a.ran {
			a.ran = true
			go a.f()
		}
	}
	c.afters = nil
}
