// Package pool runs one function as a set of plugin processes (its parallelism), keeps them
// alive and swaps their binary without losing an invocation.
//
// Supervision: each slot has a supervisor goroutine. A process that exits without being asked
// to is restarted after an exponential backoff; the invocations it had in flight return an
// error wrapping ErrUnavailable, so the caller redelivers their inputs. A slot whose process
// keeps failing is marked failed after Config.FailAfter consecutive crashes and retried at the
// longest backoff; other slots and other functions are not disturbed.
//
// Reload: a new process is started with the new binary for each slot in turn; once it is up,
// new invocations go to it while the old process drains its in-flight invocations, and then the
// old process is stopped.
package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fnhost/fnhost/functions/pf/plugin"
	"github.com/fnhost/fnhost/internal/sleep"
)

// ErrUnavailable is wrapped by Invoke errors that mean the invocation did not produce a result
// because no process could run it (crashed, restarting, reloading, closed). The input should be
// retried or redelivered.
var ErrUnavailable = errors.New("pool: function unavailable")

// ErrClosed is returned by calls after Close.
var ErrClosed = errors.New("pool: closed")

// Config configures a Pool.
type Config struct {
	// Binary is the function executable. Required.
	Binary string
	// Info is the function's identity; each slot's process gets it with its own InstanceID.
	Info plugin.Info
	// Parallelism is the number of processes. Default 1.
	Parallelism int
	// MaxInFlight bounds the concurrent invocations per process. Default 64.
	MaxInFlight int
	// MaxProcs is each process's GOMAXPROCS (plugin.Config.MaxProcs). Default 1.
	MaxProcs int
	// PulsarURL is passed to the plugins for NewOutputMessage; empty in embedded mode.
	PulsarURL string
	// RestartBackoff is the first delay before restarting a crashed process; it doubles up to
	// MaxRestartBackoff. Defaults 100ms and 10s.
	RestartBackoff    time.Duration
	MaxRestartBackoff time.Duration
	// FailAfter consecutive crashes mark a slot failed in Status. Default 5.
	FailAfter int
	// StartTimeout bounds one process launch. Default 30s.
	StartTimeout time.Duration
	// Logger is for lifecycle logs and the plugins' own logs. Default: discard.
	Logger *slog.Logger
	// OnRestart, if set, is called after a crashed process of slot was replaced.
	OnRestart func(slot int)
}

func (c *Config) setDefaults() {
	if c.Parallelism <= 0 {
		c.Parallelism = 1
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = plugin.DefaultMaxInFlight
	}
	if c.RestartBackoff <= 0 {
		c.RestartBackoff = 100 * time.Millisecond
	}
	if c.MaxRestartBackoff < c.RestartBackoff {
		c.MaxRestartBackoff = 10 * time.Second
	}
	if c.FailAfter <= 0 {
		c.FailAfter = 5
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// State is a slot's state.
type State string

// Slot states.
const (
	Starting State = "starting"
	Running  State = "running"
	Backoff  State = "restarting"
	Failed   State = "failed"
	Stopped  State = "stopped"
)

// SlotStatus describes one process slot.
type SlotStatus struct {
	Instance  int    `json:"instance"`
	State     State  `json:"state"`
	Pid       int    `json:"pid,omitempty"`
	Restarts  int    `json:"restarts"`
	LastError string `json:"lastError,omitempty"`
}

// Status describes a pool.
type Status struct {
	Binary  string       `json:"binary"`
	Reloads int          `json:"reloads"`
	Slots   []SlotStatus `json:"instances"`
}

// Pool is a function's set of plugin processes. Its methods are safe for concurrent use.
type Pool struct {
	cfg    Config
	slots  []*slot
	next   atomic.Uint64
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex // guards binary, reloads, closed
	binary  string
	reloads int
	closed  bool

	reloadMu sync.Mutex // one reload at a time
}

type slot struct {
	idx int

	mu       sync.Mutex
	proc     *plugin.Process
	ready    chan struct{} // closed while proc != nil
	swapped  chan struct{} // closed and replaced when proc is replaced by a reload
	state    State
	restarts int
	crashes  int // consecutive
	lastErr  string
}

// Start launches the pool's processes and their supervisors, and returns once every slot has
// a running process, or with the first launch error (after stopping what started). ctx bounds
// the launch only; the pool runs until Close.
func Start(ctx context.Context, cfg Config) (*Pool, error) {
	cfg.setDefaults()
	if cfg.Binary == "" {
		return nil, errors.New("pool: Config.Binary is empty")
	}
	runCtx, cancel := context.WithCancel(context.Background())
	p := &Pool{cfg: cfg, cancel: cancel, binary: cfg.Binary}
	for i := range cfg.Parallelism {
		p.slots = append(p.slots, &slot{idx: i, ready: make(chan struct{}), swapped: make(chan struct{}), state: Starting})
	}
	errs := make([]error, len(p.slots))
	var wg sync.WaitGroup
	for i, s := range p.slots {
		wg.Go(func() {
			proc, err := p.launch(ctx, s.idx, cfg.Binary)
			if err != nil {
				errs[i] = err
				return
			}
			s.set(proc)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		cancel()
		for _, s := range p.slots {
			if proc := s.current(); proc != nil {
				proc.Kill()
			}
		}
		return nil, err
	}
	for _, s := range p.slots {
		p.wg.Go(func() { p.supervise(runCtx, s) })
	}
	cfg.Logger.Info("function started", "binary", cfg.Binary, "instances", cfg.Parallelism)
	return p, nil
}

// launch starts one process for slot idx.
func (p *Pool) launch(ctx context.Context, idx int, binary string) (*plugin.Process, error) {
	info := p.cfg.Info
	info.InstanceID = idx
	ctx, cancel := context.WithTimeout(ctx, p.cfg.StartTimeout)
	defer cancel()
	proc, err := plugin.Start(ctx, plugin.Config{
		Path:         binary,
		Info:         info,
		PulsarURL:    p.cfg.PulsarURL,
		MaxInFlight:  p.cfg.MaxInFlight,
		MaxProcs:     p.cfg.MaxProcs,
		Logger:       p.cfg.Logger.With("instance", idx),
		StartTimeout: p.cfg.StartTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("instance %d: %w", idx, err)
	}
	return proc, nil
}

// supervise restarts slot s's process whenever it exits on its own, until ctx ends.
func (p *Pool) supervise(ctx context.Context, s *slot) {
	log := p.cfg.Logger.With("instance", s.idx)
	backoff := p.cfg.RestartBackoff
	for {
		proc, swapped := s.watch()
		if proc != nil {
			select {
			case <-ctx.Done():
				return
			case <-swapped:
				continue // a reload replaced the process; watch the new one
			case <-proc.Exited():
			}
			if !s.clear(proc) {
				continue // replaced meanwhile
			}
			proc.Kill() // reap it and go-plugin's goroutines; it has exited already
			crashes := s.crashed("process exited unexpectedly", p.cfg.FailAfter)
			log.Warn("plugin exited; restarting", "pid", proc.Pid(), "consecutive_crashes", crashes, "backoff", backoff)
		}
		if !sleep.For(ctx, backoff) {
			return
		}
		next, err := p.launch(ctx, s.idx, p.currentBinary())
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			crashes := s.crashed(err.Error(), p.cfg.FailAfter)
			log.Error("restarting plugin", "err", err, "consecutive_crashes", crashes)
			backoff = min(2*backoff, p.cfg.MaxRestartBackoff)
			continue
		}
		if !s.set(next) {
			next.Kill() // a reload installed a process meanwhile
			continue
		}
		s.restarted()
		backoff = p.cfg.RestartBackoff
		log.Info("plugin restarted", "pid", next.Pid())
		if p.cfg.OnRestart != nil {
			p.cfg.OnRestart(s.idx)
		}
	}
}

func (p *Pool) currentBinary() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.binary
}

// Invoke runs req on one of the pool's processes (round robin), calling fn for each event. It
// waits, bounded by ctx (and by req.Deadline when req.EnforceDeadline), for a process when
// none is running. It returns the slot that ran the
// invocation. An error wrapping ErrUnavailable means the invocation produced no result.
func (p *Pool) Invoke(ctx context.Context, req *plugin.Request, fn func(plugin.Event) error) (plugin.Result, int, error) {
	s := p.slots[int(p.next.Add(1)-1)%len(p.slots)]
	// A process that a reload is draining refuses new invocations without running them: such
	// an invocation is sent again, to the process that replaced it.
	var deadline time.Time // bounds the wait for a process, as it bounds the invocation
	if req.EnforceDeadline {
		deadline = req.Deadline
	}
	for attempt := 0; ; attempt++ {
		proc, err := s.get(ctx, deadline)
		if err != nil {
			return plugin.Result{}, s.idx, fmt.Errorf("%w: instance %d: %w", ErrUnavailable, s.idx, err)
		}
		res, err := proc.Invoke(ctx, req, fn)
		switch {
		case err == nil:
			return res, s.idx, nil
		case errors.Is(err, plugin.ErrDraining) && attempt < 3 && s.current() != proc:
			continue
		case errors.Is(err, plugin.ErrExited), errors.Is(err, plugin.ErrClosed), errors.Is(err, plugin.ErrDraining):
			return res, s.idx, fmt.Errorf("%w: instance %d: %w", ErrUnavailable, s.idx, err)
		default:
			return res, s.idx, err
		}
	}
}

// Reload replaces every process with one running binary, one slot at a time: the new process
// starts, takes new invocations, then the old one drains (bounded by ctx) and stops. On a
// launch error the old processes keep running and the error is returned.
func (p *Pool) Reload(ctx context.Context, binary string) error {
	p.reloadMu.Lock()
	defer p.reloadMu.Unlock()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	p.mu.Unlock()
	for _, s := range p.slots {
		next, err := p.launch(ctx, s.idx, binary)
		if err != nil {
			return fmt.Errorf("reloading %s: %w", binary, err)
		}
		old := s.swap(next)
		if old != nil {
			if err := old.Drain(ctx); err != nil {
				p.cfg.Logger.Warn("draining the old plugin; stopping it anyway", "instance", s.idx, "err", err)
			}
			old.Kill()
		}
	}
	p.mu.Lock()
	p.binary = binary
	p.reloads++
	p.mu.Unlock()
	p.cfg.Logger.Info("function reloaded", "binary", binary)
	return nil
}

// Close drains every process (bounded by ctx), stops them and the supervisors. It is
// idempotent; later Invoke calls fail with ErrUnavailable.
func (p *Pool) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.reloadMu.Lock() // let a reload finish first
	defer p.reloadMu.Unlock()
	p.cancel()
	p.wg.Wait()
	var (
		errMu sync.Mutex
		errs  []error
		wg    sync.WaitGroup
	)
	for _, s := range p.slots {
		proc := s.stop()
		if proc == nil {
			continue
		}
		wg.Go(func() {
			if err := proc.Drain(ctx); err != nil && !errors.Is(err, plugin.ErrExited) {
				errMu.Lock()
				errs = append(errs, fmt.Errorf("draining instance %d: %w", s.idx, err))
				errMu.Unlock()
			}
			proc.Kill()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Status reports the pool's processes.
func (p *Pool) Status() Status {
	p.mu.Lock()
	st := Status{Binary: p.binary, Reloads: p.reloads}
	p.mu.Unlock()
	for _, s := range p.slots {
		st.Slots = append(st.Slots, s.status())
	}
	return st
}

// Pids returns the process id of each slot's running process (0 when down).
func (p *Pool) Pids() []int {
	pids := make([]int, len(p.slots))
	for i, s := range p.slots {
		if proc := s.current(); proc != nil {
			pids[i] = proc.Pid()
		}
	}
	return pids
}

// --- slot

func (s *slot) current() *plugin.Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

func (s *slot) watch() (*plugin.Process, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc, s.swapped
}

// get returns the running process, waiting for one bounded by ctx and by deadline (none when
// zero).
func (s *slot) get(ctx context.Context, deadline time.Time) (*plugin.Process, error) {
	var timer *time.Timer // made on the first wait
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		s.mu.Lock()
		proc, ready, state := s.proc, s.ready, s.state
		s.mu.Unlock()
		if proc != nil {
			return proc, nil
		}
		if state == Stopped {
			return nil, ErrClosed
		}
		var expired <-chan time.Time
		if !deadline.IsZero() {
			if timer == nil {
				timer = time.NewTimer(time.Until(deadline))
			}
			expired = timer.C
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for a process (%s): %w", state, context.Cause(ctx))
		case <-expired:
			return nil, fmt.Errorf("waiting for a process (%s): %w", state, context.DeadlineExceeded)
		}
	}
}

// set installs proc as the slot's process; false (and nothing changed) when the slot already
// has one, which a reload put there meanwhile, or when it is stopped.
func (s *slot) set(proc *plugin.Process) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil || s.state == Stopped {
		return false
	}
	s.proc = proc
	s.state = Running
	close(s.ready)
	return true
}

// swap installs proc in place of the running process and returns the old one.
func (s *slot) swap(proc *plugin.Process) *plugin.Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.proc
	s.proc = proc
	s.state = Running
	if old == nil {
		close(s.ready)
	}
	close(s.swapped)
	s.swapped = make(chan struct{})
	return old
}

// clear removes proc if it is still the slot's process; false when it was replaced.
func (s *slot) clear(proc *plugin.Process) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != proc {
		return false
	}
	s.proc = nil
	s.ready = make(chan struct{})
	s.state = Backoff
	return true
}

func (s *slot) crashed(reason string, failAfter int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.crashes++
	s.lastErr = reason
	if s.crashes >= failAfter {
		s.state = Failed
	}
	return s.crashes
}

func (s *slot) restarted() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.restarts++
	s.crashes = 0
}

// stop marks the slot stopped and returns its process.
func (s *slot) stop() *plugin.Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	proc := s.proc
	s.proc = nil
	if s.state != Stopped {
		s.state = Stopped
		select {
		case <-s.ready:
		default:
			close(s.ready) // wake waiters; they see Stopped
		}
	}
	return proc
}

func (s *slot) status() SlotStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := SlotStatus{Instance: s.idx, State: s.state, Restarts: s.restarts, LastError: s.lastErr}
	if s.proc != nil {
		st.Pid = s.proc.Pid()
	}
	return st
}
