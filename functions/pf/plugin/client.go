package plugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fnhost/fnhost/functions/pf/internal/datasock"
	"github.com/fnhost/fnhost/functions/pf/plugin/pluginpb"
)

// DefaultMaxInFlight is the bound on concurrent invocations per plugin process when
// Config.MaxInFlight is 0.
const DefaultMaxInFlight = 64

const (
	// eventBuffer is how many events of one invocation the receiving loop may queue before
	// it waits for Invoke's callback: enough to ride over a callback's short pauses, small
	// enough that a stalled callback is noticed (it stalls the whole stream, see Invoke).
	eventBuffer = 16
	// maxBatch bounds the requests sent in one frame, so one frame never grows without end
	// while callers keep queueing.
	maxBatch = 256
	// maxBatchBytes bounds the payload bytes of one frame (a bigger payload goes alone).
	maxBatchBytes = 1 << 20
)

// Client is the host's side of the protocol over one gRPC connection to a plugin: what the
// plugin dispenses (GRPCPlugin.GRPCClient). Start wraps one in a *Process; use a Client
// directly only with a connection you manage yourself (tests use plugin.TestPluginGRPCConn).
//
// Configure must succeed before Invoke, Health or Drain. All methods are safe for concurrent
// use. Close releases the Client; it does not close the gRPC connection (go-plugin owns it).
type Client struct {
	rpc pluginpb.FunctionClient
	// exited is go-plugin's context, cancelled when the plugin process exits.
	exited context.Context

	// out queues the requests and cancels for the sender, in stream order. Its length is
	// bounded by the slots: an invocation queues one request, and at most one cancel before
	// its Done frees the slot.
	out requestQueue

	closeOnce sync.Once
	wg        sync.WaitGroup // the sender and the receiver

	mu          sync.Mutex
	configured  bool
	dataSocket  bool // the pipeline runs over the data socket
	draining    bool
	maxInFlight int
	slots       chan struct{} // one token per invocation the plugin has not finished
	nextID      uint64
	pending     map[uint64]*pendingCall
	idle        chan struct{} // closed when pending becomes empty; nil when nobody waits
	cancel      context.CancelFunc
	// broken is closed, with brokenErr set, when the pipeline ends: Close, or a lost process.
	broken    chan struct{}
	brokenErr error
}

type pendingCall struct {
	// events carries the invocation's events, Done last; the receiver sends, nobody closes.
	events chan *pluginpb.Event
	// abandoned is closed by Invoke when it returns before Done: the receiver then drops
	// the invocation's events.
	abandoned chan struct{}
	// req is the invocation's request, recycled with the call. Recycling is safe: the
	// sender has encoded a request before the plugin can answer it with Done.
	req    pluginpb.PipelineRequest
	invoke pluginpb.PipelineRequest_Invoke
	body   pluginpb.InvokeRequest
	// deadline fires at the deadline of a Request.EnforceDeadline invocation; stopped
	// whenever the call is not waiting. One per call, recycled with it: a
	// context.WithDeadline per invocation costs a timer, a context and a registration with
	// the caller's context.
	deadline *time.Timer
}

// arm starts pc's timer for deadline and returns its channel.
func (pc *pendingCall) arm(deadline time.Time) <-chan time.Time {
	pc.deadline.Reset(time.Until(deadline))
	return pc.deadline.C
}

// recycle stops pc's timer, lets go of the caller's request, and returns pc to callPool. Only
// for a call the receiver does not hold: never sent, or ended by Done.
func (pc *pendingCall) recycle() {
	pc.deadline.Stop()
	pc.body = pluginpb.InvokeRequest{}
	callPool.Put(pc)
}

// callPool recycles the pendingCalls of invocations that ended with Done: their two channels
// are most of an invocation's allocations on the host. An abandoned call is not recycled,
// because the receiver may still select on it.
var callPool = sync.Pool{New: func() any {
	pc := &pendingCall{events: make(chan *pluginpb.Event, eventBuffer), abandoned: make(chan struct{})}
	pc.deadline = time.NewTimer(time.Hour)
	pc.deadline.Stop()
	return pc
}}

// requestQueue hands requests from Invoke calls to the sender without a rendezvous: callers
// append and go on to wait for their events, and the sender takes everything queued in one
// frame. It wakes the sender only when the sender is idle, so a lone caller's request goes
// out at once and concurrent callers' requests share frames.
type requestQueue struct {
	mu      sync.Mutex
	reqs    []*pluginpb.PipelineRequest
	spare   []*pluginpb.PipelineRequest // the previous batch, reused once sent
	waiting bool                        // the sender is parked on wake
	// wake has capacity 1: it is signalled once per idle period (waiting guards it).
	wake chan struct{}
}

// push queues r and wakes the sender if it waits.
func (q *requestQueue) push(r *pluginpb.PipelineRequest) {
	q.mu.Lock()
	q.reqs = append(q.reqs, r)
	wake := q.waiting
	q.waiting = false
	q.mu.Unlock()
	if wake {
		q.wake <- struct{}{}
	}
}

// take waits until requests are queued, or ctx ends (nil), and returns them all. The batch
// returned stays valid until the next call of take.
func (q *requestQueue) take(ctx context.Context) []*pluginpb.PipelineRequest {
	q.mu.Lock()
	for len(q.reqs) == 0 {
		q.waiting = true
		q.mu.Unlock()
		select {
		case <-q.wake:
		case <-ctx.Done():
			return nil
		}
		// Woken by the first request after a pause: let the other callers that are
		// ready to run queue theirs too, so that they share the frame.
		runtime.Gosched()
		q.mu.Lock()
	}
	batch := q.reqs
	clear(q.spare)
	q.reqs, q.spare = q.spare[:0], batch
	q.mu.Unlock()
	return batch
}

func newClient(exited context.Context, rpc pluginpb.FunctionClient) *Client {
	return &Client{
		rpc:     rpc,
		exited:  exited,
		out:     requestQueue{wake: make(chan struct{}, 1)},
		pending: map[uint64]*pendingCall{},
		broken:  make(chan struct{}),
	}
}

// Configure sends cfg.Info, cfg.PulsarURL, cfg.MaxInFlight and the level of cfg.Logger to the
// plugin (cfg.Path and cfg.StartTimeout are not used here), then opens the pipeline stream
// that Invoke uses. It is accepted once. ctx bounds the call; the stream lives until Close or
// the process exits.
func (c *Client) Configure(ctx context.Context, cfg Config) error {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	info, err := cfg.Info.proto()
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.configured {
		return errors.New("plugin: configured already")
	}
	if c.cancel != nil {
		return ErrClosed
	}
	resp, err := c.rpc.Configure(ctx, &pluginpb.ConfigureRequest{
		Info:        info,
		PulsarUrl:   cfg.PulsarURL,
		MaxInFlight: int32(cfg.MaxInFlight),
		LogLevel:    logLevel(ctx, cfg.Logger),
		DataSocket:  !cfg.GRPCPipeline,
	})
	if err != nil {
		return fmt.Errorf("configuring function %s: %w", cfg.Info.Name, rpcError(ctx, err))
	}
	n := int(resp.GetMaxInFlight())
	if n <= 0 {
		return fmt.Errorf("configuring function %s: plugin reports max in flight %d", cfg.Info.Name, n)
	}
	// The stream belongs to the process, not to this call: it ends with Close or when
	// go-plugin sees the process exit.
	sctx, cancel := context.WithCancel(c.exited)
	var stream pipelineStream
	if addr := resp.GetDataSocket(); addr != "" && !cfg.GRPCPipeline {
		conn, err := datasock.Dial(ctx, addr, resp.GetDataToken())
		if err == nil {
			// The sender hands frames over and goes back for more while they are written.
			conn.WriteBehind()
			// sctx ends when the process exits or the client closes: nobody waits on the
			// stream's last frames then, so a Close error has nobody to tell.
			context.AfterFunc(sctx, func() { _ = conn.Close() })
			stream = dataStream{conn}
			c.dataSocket = true
		} else {
			cfg.Logger.Warn("plugin data socket unusable; invoking over gRPC", "function", cfg.Info.Name, "err", err)
		}
	}
	if stream == nil {
		s, err := c.rpc.Pipeline(sctx)
		if err != nil {
			cancel()
			return fmt.Errorf("opening the pipeline of function %s: %w", cfg.Info.Name, err)
		}
		stream = s
	}
	c.configured, c.maxInFlight, c.cancel = true, n, cancel
	c.slots = make(chan struct{}, n)
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.send(sctx, cancel, stream) }()
	go func() { defer c.wg.Done(); c.receive(sctx, stream) }()
	return nil
}

// pipelineStream is what send and receive need of the pipeline: the gRPC stream, or the
// plugin's data socket.
type pipelineStream interface {
	Send(*pluginpb.PipelineRequests) error
	Recv() (*pluginpb.PipelineEvents, error)
}

// dataStream is the host's side of the pipeline over the data socket.
type dataStream struct{ conn *datasock.Conn }

func (d dataStream) Send(m *pluginpb.PipelineRequests) error { return d.conn.Write(m) }

func (d dataStream) Recv() (*pluginpb.PipelineEvents, error) {
	m := new(pluginpb.PipelineEvents)
	if err := d.conn.Read(m); err != nil {
		return nil, err
	}
	return m, nil
}

// DataSocket reports whether the invocations go over the plugin's data socket rather than
// the gRPC stream.
func (c *Client) DataSocket() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dataSocket
}

// logLevel is the least severe level l keeps, so that the plugin does not format records the
// host would drop.
func logLevel(ctx context.Context, l *slog.Logger) pluginpb.LogLevel {
	for _, lv := range []struct {
		slog  slog.Level
		proto pluginpb.LogLevel
	}{
		{levelTrace, pluginpb.LogLevel_LOG_LEVEL_TRACE},
		{slog.LevelDebug, pluginpb.LogLevel_LOG_LEVEL_DEBUG},
		{slog.LevelInfo, pluginpb.LogLevel_LOG_LEVEL_INFO},
		{slog.LevelWarn, pluginpb.LogLevel_LOG_LEVEL_WARN},
	} {
		if l.Enabled(ctx, lv.slog) {
			return lv.proto
		}
	}
	return pluginpb.LogLevel_LOG_LEVEL_ERROR
}

// MaxInFlight returns the bound on concurrent invocations in effect (0 before Configure).
func (c *Client) MaxInFlight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.maxInFlight
}

// Invoke runs the function for req and returns how it ended. It is safe for concurrent use:
// concurrent invocations share one stream to the plugin.
//
// fn is called on Invoke's goroutine for each event (output, metric, ack) in the order the
// function produced them, before Invoke returns. While fn runs, the events of other
// invocations may wait: keep it short, and do not call Invoke or Drain on the same Client
// from it. An error from fn
// cancels the invocation and is returned, wrapped.
//
// Invoke blocks while the plugin already runs MaxInFlight invocations (backpressure), until
// the function finishes, or until ctx is done (or, with req.EnforceDeadline, the deadline
// passes). The deadline sent to the plugin is req.Deadline, or else ctx's deadline. When ctx
// ends (or the enforced deadline passes) first, Invoke cancels the invocation in the plugin
// and returns at once with ctx's error (or context.DeadlineExceeded); the plugin's slot stays
// taken until the function returns.
//
// The error is nil when the function ran, whatever its outcome: see Result.Kind and
// Result.Err. Otherwise it is ctx's error, fn's, ErrDraining, ErrClosed, ErrNotConfigured, or
// ErrExited (the process or the connection died: the function's outcome is unknown).
func (c *Client) Invoke(ctx context.Context, req *Request, fn func(Event) error) (Result, error) {
	c.mu.Lock()
	slots, configured, draining := c.slots, c.configured, c.draining
	c.mu.Unlock()
	switch {
	case !configured:
		return Result{}, ErrNotConfigured
	case draining:
		return Result{}, ErrDraining
	}
	deadline := req.Deadline
	if deadline.IsZero() {
		deadline, _ = ctx.Deadline()
	}
	pc := callPool.Get().(*pendingCall)
	var expired <-chan time.Time // never ready unless the deadline is enforced
	if req.EnforceDeadline && !deadline.IsZero() {
		expired = pc.arm(deadline)
	}
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		pc.recycle()
		return Result{}, fmt.Errorf("waiting for an invocation slot: %w", context.Cause(ctx))
	case <-expired:
		pc.recycle()
		return Result{}, fmt.Errorf("waiting for an invocation slot: %w", context.DeadlineExceeded)
	case <-c.broken:
		pc.recycle()
		return Result{}, c.brokenErr
	}

	c.mu.Lock()
	if c.draining {
		c.mu.Unlock()
		<-slots
		pc.recycle()
		return Result{}, ErrDraining
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = pc
	c.mu.Unlock()

	// The request is queued, not handed over: the sender sends it with whatever else is
	// queued, and the receiver may deliver its events before the sender got to it.
	req.fill(&pc.body, deadline)
	pc.invoke.Invoke = &pc.body
	pc.req.Id, pc.req.Request = id, &pc.invoke
	c.out.push(&pc.req)

	var res Result
	for {
		var ev *pluginpb.Event
		select {
		case ev = <-pc.events:
		case <-ctx.Done():
			c.abandon(id, pc)
			return Result{}, fmt.Errorf("invoking: %w", context.Cause(ctx))
		case <-expired:
			c.abandon(id, pc)
			return Result{}, fmt.Errorf("invoking: %w", context.DeadlineExceeded)
		case <-c.broken:
			pc.deadline.Stop()
			// Events received before the break are still good; Done among them settles it.
			select {
			case ev = <-pc.events:
			default:
				return Result{}, c.brokenErr
			}
		}
		e, done := convertEvent(ev, &res)
		if o := ev.GetDone().GetOutput(); o != nil {
			// The returned output, carried by Done: it comes before Done, as its own event
			// would have.
			res.Outputs++
			if err := fn(Event{Kind: EventOutput, Output: convertOutput(o), Last: true}); err != nil {
				// Done is here: the plugin holds nothing of it any more, so nothing to cancel.
				pc.deadline.Stop()
				return Result{}, fmt.Errorf("handling an event of the invocation: %w", err)
			}
		}
		if done {
			// The receiver is done with pc: it removed it from pending before sending Done.
			pc.recycle()
			if ev.GetDone().GetKind() == pluginpb.ErrorKind_ERROR_KIND_UNAVAILABLE {
				return Result{}, ErrDraining // the plugin began draining on its own (SIGTERM)
			}
			return res, nil
		}
		if e.Kind == 0 {
			continue // an event kind this host does not know: newer plugin, ignore
		}
		if e.Kind == EventOutput {
			res.Outputs++
		}
		if err := fn(e); err != nil {
			c.abandon(id, pc)
			return Result{}, fmt.Errorf("handling an event of the invocation: %w", err)
		}
	}
}

// convertEvent turns ev into an Event, or, for Done, fills res and reports done.
func convertEvent(ev *pluginpb.Event, res *Result) (e Event, done bool) {
	switch x := ev.GetEvent().(type) {
	case *pluginpb.Event_Output:
		return Event{Kind: EventOutput, Output: convertOutput(x.Output)}, false
	case *pluginpb.Event_Metric:
		return Event{Kind: EventMetric, Metric: Metric{Name: x.Metric.GetName(), Value: x.Metric.GetValue()}}, false
	case *pluginpb.Event_Ack:
		return Event{Kind: EventAck}, false
	case *pluginpb.Event_Done:
		d := x.Done
		res.Error, res.Stack = d.GetError(), d.GetStack()
		switch d.GetKind() {
		case pluginpb.ErrorKind_ERROR_KIND_NONE:
			res.Kind = KindNone
		case pluginpb.ErrorKind_ERROR_KIND_PANIC:
			res.Kind = KindPanic
		case pluginpb.ErrorKind_ERROR_KIND_DEADLINE:
			res.Kind = KindDeadline
		case pluginpb.ErrorKind_ERROR_KIND_CANCELED:
			res.Kind = KindCanceled
		default: // USER, and UNAVAILABLE which the host's own draining check pre-empts
			res.Kind = KindUser
		}
		return Event{}, true
	}
	return Event{}, false
}

func convertOutput(o *pluginpb.Output) Output {
	return Output{
		Payload:    o.GetPayload(),
		Key:        o.GetKey(),
		Properties: o.GetProperties(),
		EventTime:  fromUnixNano(o.GetEventTimeUnixNano()),
	}
}

// abandon is called by an Invoke that returns before Done: its later events are dropped and
// the plugin is asked to cancel it. The slot is released when Done arrives.
func (c *Client) abandon(id uint64, pc *pendingCall) {
	pc.deadline.Stop()
	close(pc.abandoned)
	c.mu.Lock()
	_, ok := c.pending[id]
	c.mu.Unlock()
	if !ok {
		return // Done arrived meanwhile
	}
	// Queued after the invocation's own request, so the plugin never sees it first.
	c.out.push(&pluginpb.PipelineRequest{Id: id, Request: &pluginpb.PipelineRequest_Cancel{Cancel: &pluginpb.Cancel{}}})
}

// signalIdle wakes Drain when nothing is pending. c.mu is held.
func (c *Client) signalIdle() {
	if len(c.pending) == 0 && c.idle != nil {
		close(c.idle)
		c.idle = nil
	}
}

// send writes the queued requests and cancels to the stream: everything queued while the
// previous frame was being sent goes in one frame (split at maxBatch requests or
// maxBatchBytes of payload).
func (c *Client) send(ctx context.Context, cancel context.CancelFunc, stream pipelineStream) {
	var frame pluginpb.PipelineRequests
	for {
		batch := c.out.take(ctx)
		if batch == nil {
			return
		}
		for len(batch) > 0 {
			n, size := 0, 0
			for n < len(batch) && n < maxBatch && (n == 0 || size < maxBatchBytes) {
				size += len(batch[n].GetInvoke().GetPayload())
				n++
			}
			frame.Requests = batch[:n]
			err := stream.Send(&frame)
			frame.Requests = nil
			if err != nil {
				// The receiver sees why; end the stream so that it does.
				cancel()
				return
			}
			batch = batch[n:]
		}
	}
}

// receive dispatches the plugin's events to their Invoke calls until the stream ends, then
// marks the Client broken.
func (c *Client) receive(ctx context.Context, stream pipelineStream) {
	var (
		err   error
		calls []*pendingCall // the frame's events' calls, looked up under one lock
	)
recv:
	for {
		var frame *pluginpb.PipelineEvents
		frame, err = stream.Recv()
		if err != nil {
			break
		}
		events := frame.GetEvents()
		calls = calls[:0]
		c.mu.Lock()
		for _, pe := range events {
			pc := c.pending[pe.GetId()]
			if _, done := pe.GetEvent().GetEvent().(*pluginpb.Event_Done); pc != nil && done {
				delete(c.pending, pe.GetId())
				<-c.slots
				c.signalIdle()
			}
			calls = append(calls, pc)
		}
		c.mu.Unlock()
		for i, pe := range events {
			pc := calls[i]
			if pc == nil {
				continue // an invocation abandoned and finished, or unknown
			}
			select {
			case pc.events <- pe.GetEvent():
			case <-pc.abandoned:
			case <-ctx.Done():
				err = ctx.Err()
				break recv
			}
		}
		clear(calls)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.brokenErr != nil: // Close set it
	case c.exited.Err() != nil:
		c.brokenErr = ErrExited
	default:
		c.brokenErr = fmt.Errorf("%w: pipeline: %w", ErrExited, err)
	}
	close(c.broken)
	if c.idle != nil {
		close(c.idle)
		c.idle = nil
	}
}

// Health asks the plugin for its state. ctx bounds the call.
func (c *Client) Health(ctx context.Context) (Health, error) {
	resp, err := c.rpc.Health(ctx, &pluginpb.HealthRequest{})
	if err != nil {
		return Health{}, fmt.Errorf("checking plugin health: %w", rpcError(ctx, err))
	}
	return Health{
		Serving:     resp.GetServing(),
		InFlight:    int(resp.GetInFlight()),
		MaxInFlight: int(resp.GetMaxInFlight()),
		Served:      resp.GetServed(),
	}, nil
}

// Drain stops accepting invocations (Invoke returns ErrDraining from now on), asks the plugin
// to do the same, and waits until every invocation in flight has finished and its events were
// delivered, or ctx is done. Then the process can be killed without losing a result. Drain
// can be called again, for example with a longer ctx after a timeout.
func (c *Client) Drain(ctx context.Context) error {
	c.mu.Lock()
	if !c.configured {
		c.mu.Unlock()
		return ErrNotConfigured
	}
	c.draining = true
	c.mu.Unlock()
	if _, err := c.rpc.Drain(ctx, &pluginpb.DrainRequest{}); err != nil {
		return fmt.Errorf("draining the plugin: %w", rpcError(ctx, err))
	}
	for {
		c.mu.Lock()
		n := len(c.pending)
		if n == 0 {
			c.mu.Unlock()
			return nil
		}
		select {
		case <-c.broken:
			c.mu.Unlock()
			return fmt.Errorf("draining: %d invocations unfinished: %w", n, c.brokenErr)
		default:
		}
		if c.idle == nil {
			c.idle = make(chan struct{})
		}
		idle := c.idle
		c.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return fmt.Errorf("draining: %d invocations unfinished: %w", n, context.Cause(ctx))
		}
	}
}

// Close ends the pipeline stream: the plugin cancels what is in flight, and Invoke calls in
// progress or to come return ErrClosed. It does not stop the process (Process.Kill does). Close
// is idempotent, safe for concurrent use, and returns once the Client's goroutines have ended.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		if c.brokenErr == nil {
			c.brokenErr = ErrClosed
		}
		cancel := c.cancel
		if cancel == nil {
			// Never configured: no stream, so nothing else will mark the Client broken.
			c.cancel = func() {}
			close(c.broken)
		}
		c.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		c.wg.Wait()
	})
	return nil
}

// rpcError turns the status of a call that ended with its ctx back into ctx's error, so that
// callers can test it with errors.Is(err, context.DeadlineExceeded). The server may notice the
// deadline a moment before the client's ctx does.
func rpcError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	switch status.Code(err) {
	case codes.DeadlineExceeded:
		return fmt.Errorf("%w (%w)", context.DeadlineExceeded, err)
	case codes.Canceled:
		return fmt.Errorf("%w (%w)", context.Canceled, err)
	}
	return err
}
