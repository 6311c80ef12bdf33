package engine

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/fnhost/fnhost/functions/pf/plugin"
)

// Guarantee is a processing guarantee, as Pulsar Functions name them.
type Guarantee int

// The processing guarantees.
const (
	AtLeastOnce Guarantee = iota
	AtMostOnce
	EffectivelyOnce
	Manual
)

// Order is how inputs are spread over lanes (see the package doc).
type Order int

// The orders.
const (
	// Unordered gives every input to the first free lane (Shared).
	Unordered Order = iota
	// KeyOrdered picks an input's lane by its key (Key_Shared).
	KeyOrdered
	// Strict runs one lane (Failover, Exclusive).
	Strict
)

// Source delivers inputs and settles them. A pulsar.Consumer is one.
type Source interface {
	// Receive blocks until the next input or until ctx ends (then it returns ctx's error).
	// Any other error means the source broke: the engine stops its intake. Safe for
	// concurrent use.
	Receive(ctx context.Context) (pulsar.Message, error)
	// Ack acknowledges an input this source delivered.
	Ack(pulsar.Message) error
	// Nack asks for the input to be delivered again, later (the source's backoff) or to its
	// dead-letter topic when its deliveries are spent.
	Nack(pulsar.Message)
}

// Sink publishes messages.
type Sink interface {
	// Send publishes m to topic and calls done exactly once with the outcome: nil once the
	// broker persisted it. reply says topic is an invocation's reply-to topic. done may run
	// before Send returns. Messages sent to one topic keep their order. Safe for concurrent
	// use; m is not modified afterwards.
	Send(ctx context.Context, topic string, reply bool, m *pulsar.ProducerMessage, done func(error))
	// Flush sends what is batched and waits for it, bounded by ctx.
	Flush(ctx context.Context) error
}

// Call is one invocation of the function for one input.
type Call struct {
	// Message is the input.
	Message pulsar.Message
	// Properties are the properties the function sees: the input's, with the invocation
	// span's trace context when tracing is on. Read-only.
	Properties map[string]string
	// Deadline is when the invocation must end: the earlier of the caller's deadline and
	// the function's timeout; zero for none. ctx carries it too.
	Deadline time.Time
	// Attempt is the attempt this call is (the input's redelivery count, plus the reruns of
	// EFFECTIVELY_ONCE).
	Attempt int
}

// Function runs the user's function.
type Function interface {
	// Invoke runs the function for c. It calls emit for each event (outputs, user metrics,
	// manual acks) in the order the function produced them, from one goroutine, before it
	// returns; an output with Event.Last set is the function's returned output, its last. An
	// error from emit ends the invocation. instance says which instance ran it (an index into
	// the engine Metrics' instances). A nil error with a Result of a kind other than
	// plugin.KindNone is a failure of the function (a user exception); a non-nil error means
	// the function was not run to a result (its process died, or none was available).
	Invoke(ctx context.Context, c *Call, emit func(plugin.Event) error) (res plugin.Result, instance int, err error)
}

// Tracer starts the span of one input's processing; nil means no spans.
type Tracer interface {
	// Start returns ctx with the span of processing msg and the span.
	Start(ctx context.Context, msg pulsar.Message) (context.Context, Span)
}

// Span is the span of one input's processing.
type Span interface {
	// ForFunction returns the properties the function sees (props with the span's trace
	// context); props is not modified.
	ForFunction(props map[string]string) map[string]string
	// Propagate sets the span's trace context on an output's properties.
	Propagate(props map[string]string)
	// End ends the span with the outcome: err (not run), res (the function's), sendErr
	// (outputs not persisted).
	End(err error, res plugin.Result, sendErr error)
}

// Config configures an Engine.
type Config struct {
	// Function is tenant/namespace/name, for logs and errors.
	Function string
	// OutputTopic is the function's output topic; empty for none.
	OutputTopic string
	Guarantee   Guarantee
	Order       Order
	// Lanes is how many inputs are processed at once (Strict: always 1). Default 1.
	Lanes int
	// Timeout bounds one call of the function (timeoutMs); 0 for none.
	Timeout time.Duration
	// MaxRetries is how many redeliveries a failed input gets before its last try: -1 retry
	// forever (no dead letter), n ≥ 0 at most n.
	MaxRetries int
	// RetryBackoff is the first wait before an EFFECTIVELY_ONCE rerun, doubling. Default 1s.
	RetryBackoff time.Duration
	// ForwardProperties copies the input's properties to its outputs.
	ForwardProperties bool
	// Metrics counts; required.
	Metrics *Metrics
	// Tracer traces; nil: outputs carry their input's trace context unchanged.
	Tracer Tracer
	// Logger logs per-input problems. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Lanes < 1 || c.Order == Strict {
		c.Lanes = max(1, c.Lanes)
		if c.Order == Strict {
			c.Lanes = 1
		}
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports a configuration the engine cannot run.
func (c *Config) Validate() error {
	var errs []error
	if c.Metrics == nil {
		errs = append(errs, errors.New("engine: Metrics is required"))
	}
	if c.MaxRetries < -1 {
		errs = append(errs, fmt.Errorf("engine: MaxRetries %d: want -1 (retry forever) or ≥ 0", c.MaxRetries))
	}
	if c.Guarantee == EffectivelyOnce && c.Order != Strict {
		errs = append(errs, errors.New("engine: EFFECTIVELY_ONCE needs strict order (one lane, Failover)"))
	}
	return errors.Join(errs...)
}

// Engine runs the loop of one function over its sources. Create it with New, run it with Run,
// stop it with Drain.
type Engine struct {
	cfg     Config
	fn      Function
	sink    Sink
	sources []Source

	// work is the parent of every invocation's context: cancelled only when Drain runs out of
	// time, so that invocations under way may finish.
	work       context.Context
	cancelWork context.CancelFunc
	// intake is cancelled by Drain: Run stops receiving.
	intake     context.Context
	stopIntake context.CancelFunc
	settling   sync.WaitGroup // inputs taken and not yet settled

	mu      sync.Mutex
	running bool
	ran     chan struct{} // closed when Run returns
}

// delivery is one input and the source that delivered it.
type delivery struct {
	src Source
	msg pulsar.Message
}

// New returns an engine feeding fn from sources and publishing through sink.
func New(cfg Config, fn Function, sink Sink, sources ...Source) (*Engine, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(sources) == 0 {
		return nil, errors.New("engine: no source")
	}
	e := &Engine{cfg: cfg, fn: fn, sink: sink, sources: sources, ran: make(chan struct{})}
	e.work, e.cancelWork = context.WithCancel(context.Background())
	e.intake, e.stopIntake = context.WithCancel(context.Background())
	return e, nil
}

// laneBuffer is the queue of one lane: small, so that unacknowledged inputs stay in the
// consumer's receiver queue (and with the broker) rather than pile up here.
const laneBuffer = 4

// Run receives inputs and processes them until ctx ends or Drain is called, then waits for
// the lanes to finish the invocations under way (Drain bounds that) and returns. Inputs
// received and not started are left unacknowledged: the broker redelivers them. It returns an
// error when a source broke; it runs once (a second call returns at once).
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	if e.running {
		e.mu.Unlock()
		return errors.New("engine: Run called twice")
	}
	e.running = true
	e.mu.Unlock()
	defer close(e.ran)

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(e.intake, func() { cancel(nil) })
	defer stop()

	var lanes sync.WaitGroup
	if e.cfg.Order == Unordered && len(e.sources) == 1 {
		// Lanes receive themselves: no goroutine between the consumer and the lanes.
		for range e.cfg.Lanes {
			lanes.Go(func() {
				if err := e.pull(ctx, e.sources[0]); err != nil {
					cancel(err)
				}
			})
		}
		lanes.Wait()
		return e.cause(ctx)
	}
	n := 1
	if e.cfg.Order == KeyOrdered {
		n = e.cfg.Lanes
	}
	queues := make([]chan delivery, n)
	for i := range queues {
		queues[i] = make(chan delivery, laneBuffer*(e.cfg.Lanes/n))
	}
	lanesPerQueue := e.cfg.Lanes / n
	for _, q := range queues {
		for range lanesPerQueue {
			lanes.Go(func() {
				for d := range q {
					if ctx.Err() != nil {
						continue // stopping: left unacknowledged for redelivery
					}
					e.process(d)
				}
			})
		}
	}
	var receivers sync.WaitGroup
	for _, src := range e.sources {
		receivers.Go(func() {
			if err := e.receive(ctx, src, queues); err != nil {
				cancel(err)
			}
		})
	}
	receivers.Wait()
	for _, q := range queues {
		close(q)
	}
	lanes.Wait()
	return e.cause(ctx)
}

// cause is the error Run returns: a broken source's, nil for a stop.
func (e *Engine) cause(ctx context.Context) error {
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// pull is a lane that receives its inputs itself until ctx ends.
func (e *Engine) pull(ctx context.Context, src Source) error {
	for {
		msg, err := src.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%s: receiving: %w", e.cfg.Function, err)
		}
		e.process(delivery{src: src, msg: msg})
	}
}

// receive hands src's inputs to the queues until ctx ends.
func (e *Engine) receive(ctx context.Context, src Source, queues []chan delivery) error {
	for {
		msg, err := src.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%s: receiving: %w", e.cfg.Function, err)
		}
		q := queues[0]
		if len(queues) > 1 {
			q = queues[laneOf(msg, len(queues))]
		}
		select {
		case q <- delivery{src: src, msg: msg}:
		case <-ctx.Done():
			return nil // not handed over: the broker redelivers it
		}
	}
}

// laneOf picks the lane of msg among n by its ordering key, else its key, as Key_Shared
// subscriptions route.
func laneOf(msg pulsar.Message, n int) int {
	k := msg.OrderingKey()
	if k == "" {
		k = msg.Key()
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(k)) // a hash's Write never fails
	return int(h.Sum32() % uint32(n))
}

// Drain stops intake, waits for the invocations under way to finish and for every input
// taken to be settled (outputs flushed and persisted), bounded by ctx. Past the bound the
// invocations still running are cancelled, and their inputs, unacknowledged, are redelivered;
// the error says so. Safe to call more than once and before Run (then it only flushes).
func (e *Engine) Drain(ctx context.Context) error {
	e.stopIntake()
	e.mu.Lock()
	running := e.running
	e.mu.Unlock()
	var err error
	if running {
		select {
		case <-e.ran:
		case <-ctx.Done():
			err = fmt.Errorf("%s: in-flight invocations did not finish in time; cancelled (their inputs will be redelivered)", e.cfg.Function)
			e.cancelWork()
			<-e.ran // lanes return once their invocations see the cancellation
		}
	}
	if ferr := e.sink.Flush(ctx); ferr != nil {
		err = errors.Join(err, fmt.Errorf("%s: flushing outputs: %w", e.cfg.Function, ferr))
	}
	settled := make(chan struct{})
	go func() { // ends when the last send's callback settles its input
		e.settling.Wait()
		close(settled)
	}()
	select {
	case <-settled:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("%s: outputs not persisted in time (their inputs will be redelivered)", e.cfg.Function))
	}
	return err
}

// Close cancels whatever still runs. Call it after Drain.
func (e *Engine) Close() {
	e.stopIntake()
	e.cancelWork()
}
