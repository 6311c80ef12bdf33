package instance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
	pb "github.com/fnhost/fnhost/functions/pf/internal/pfproto"
)

// Args are the command-line sources of the instance configuration; exactly one is set.
type Args struct {
	ConfJSON string // -instance-conf: the JSON document the worker passes
	ConfPath string // -instance-conf-path: a YAML file with the same keys
}

// Shutdown bounds. The worker kills an instance about 10 s after SIGTERM, so in-flight
// calls get drainTimeout to finish and their outputs to be persisted, and closing gets the
// rest.
const (
	drainTimeout = 7 * time.Second
	closeTimeout = 2 * time.Second
)

// Run parses the configuration and runs the instance until ctx is cancelled (SIGTERM), then
// closes everything and returns nil. A configuration error is returned at once, naming the
// field, before any connection.
func Run(ctx context.Context, args Args, h call.Handler, stderr io.Writer) error {
	cfg, err := ParseArgs(args)
	if err != nil {
		return configError{err}
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	// Listen before connecting to the broker: the worker's health checks and status calls
	// must find the instance while Pulsar connects.
	grpcLis, err := net.Listen("tcp", ":"+strconv.Itoa(cfg.Port))
	if err != nil {
		return fmt.Errorf("listening for InstanceControl on port %d: %w", cfg.Port, err)
	}
	var metricsLis net.Listener
	if cfg.MetricsPort > 0 {
		if metricsLis, err = net.Listen("tcp", ":"+strconv.Itoa(cfg.MetricsPort)); err != nil {
			grpcLis.Close()
			return fmt.Errorf("listening for metrics on port %d: %w", cfg.MetricsPort, err)
		}
	}
	return run(ctx, cfg, h, logger, grpcLis, metricsLis)
}

// ErrConfig matches (errors.Is) every configuration error Run returns, so that the caller can
// exit with a usage status.
var ErrConfig = errors.New("instance config")

type configError struct{ err error }

func (e configError) Error() string        { return e.err.Error() }
func (e configError) Unwrap() error        { return e.err }
func (e configError) Is(target error) bool { return target == ErrConfig }

// env is what every invocation sees of the instance.
type env struct {
	info   *call.Info
	prods  *producers
	stats  *stats
	logger *slog.Logger
}

var _ call.Env = (*env)(nil)

func (e *env) Info() *call.Info                               { return e.info }
func (e *env) Producer(topic string) (pulsar.Producer, error) { return e.prods.get(topic) }
func (e *env) RecordMetric(name string, value float64)        { e.stats.recordMetric(name, value) }
func (e *env) Logger() *slog.Logger                           { return e.logger }

// pulsarOut publishes through the cached producers: prods for the output topic (and the
// function's own topics), replies for reply-to topics.
type pulsarOut struct {
	prods, replies *producers
	sender         *sender
}

func (o *pulsarOut) publish(topic string, reply bool, m *pulsar.ProducerMessage, done func(error)) {
	prods := o.prods
	if reply {
		prods = o.replies
	}
	p, err := prods.get(topic)
	if err != nil {
		done(err)
		return
	}
	o.sender.send(p, m, done)
}

// run runs a configured instance on the given listeners (metricsLis may be nil) and closes
// them when it returns.
func run(ctx context.Context, cfg *Config, h call.Handler, stderrLog *slog.Logger, grpcLis, metricsLis net.Listener) (err error) {
	info := &cfg.Info
	stderrLog = stderrLog.With("function", info.FQFN(), "instance_id", info.InstanceID)
	st := newStats(info, time.Now)
	hc := newHealth(time.Now)

	stopServers := serve(st, hc, info.InstanceID, grpcLis, metricsLis, stderrLog)
	defer stopServers()

	// The function's logger also ships to the log topic when there is one.
	logger := stderrLog
	var shipper *logShipper
	if info.LogTopic != "" {
		shipper = newLogShipper()
		logger = slog.New(tee{stderrLog.Handler(), shipper.handler(slog.LevelInfo).WithAttrs([]slog.Attr{
			slog.String("function", info.FQFN()), slog.Int("instance_id", info.InstanceID),
		})})
	}
	for _, w := range cfg.Warnings {
		logger.Warn("setting has no effect on a Go instance", "setting", w)
	}

	var bg sync.WaitGroup
	defer bg.Wait() // after cancelRun below
	runCtx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	// hardCtx ends sends, retries and calls that outlive the drain.
	hardCtx, hardStop := context.WithCancel(context.WithoutCancel(ctx))
	defer hardStop()

	bg.Go(func() { resetEvery(runCtx, st, metricsWindow) })
	if cfg.HealthCheckInterval > 0 {
		bg.Go(func() {
			if err := hc.watch(runCtx, cfg.HealthCheckInterval); err != nil {
				cancelRun(err)
			}
		})
	}

	opts, err := clientOptions(cfg, stderrLog)
	if err != nil {
		return err
	}
	client, err := pulsar.NewClient(opts)
	if err != nil {
		st.systemException(err)
		return fmt.Errorf("creating the Pulsar client for %s: %w", cfg.ServiceURL, err)
	}
	defer client.Close()

	prods := &producers{client: client, options: func(topic string) pulsar.ProducerOptions {
		return producerOptions(topic, cfg.Details.GetSink().GetProducerSpec(), info)
	}}
	defer prods.close()
	replies := &producers{client: client, options: func(topic string) pulsar.ProducerOptions {
		return replyProducerOptions(topic, cfg.Details.GetSink().GetProducerSpec(), info)
	}}
	defer replies.close()
	if info.OutputTopic != "" {
		if _, err := prods.get(info.OutputTopic); err != nil {
			st.systemException(err)
			return fmt.Errorf("output topic: %w", err)
		}
	}

	if shipper != nil {
		lp, err := client.CreateProducer(pulsar.ProducerOptions{
			Topic:                   info.LogTopic,
			Properties:              map[string]string{"function": info.FQFN()},
			CompressionType:         pulsar.LZ4,
			BatchingMaxPublishDelay: 100 * time.Millisecond,
			DisableBlockIfQueueFull: true,
		})
		if err != nil {
			// Logs are not worth failing the function for: they still reach stderr.
			stderrLog.Warn("creating the log topic producer; logs go to stderr only", "topic", info.LogTopic, "err", err)
			shipper.stop()
			logger = stderrLog
		} else {
			var shipping sync.WaitGroup
			// Not hardCtx: the last records are shipped after the hard stop.
			shipping.Go(func() { shipper.run(context.WithoutCancel(ctx), lp, info, stderrLog) })
			// Stop shipping after everything else has logged its last record.
			defer shipping.Wait()
			defer shipper.stop()
		}
	}

	consumers, err := subscribe(client, cfg)
	if err != nil {
		st.systemException(err)
		return err
	}
	defer func() {
		for _, c := range consumers {
			c.Close()
		}
	}()

	snd := &sender{ctx: hardCtx}
	proc := &processor{
		cfg:     cfg,
		handler: call.Safe(h),
		env:     &env{info: info, prods: prods, stats: st, logger: logger},
		stats:   st,
		logger:  logger,
		out:     &pulsarOut{prods: prods, replies: replies, sender: snd},
		now:     time.Now,
		callCtx: hardCtx,
	}

	logger.Info("instance started", "inputs", info.InputTopics, "output", info.OutputTopic,
		"subscription", cfg.Subscription, "subscription_type", subscriptionTypeName(cfg.SubscriptionType),
		"guarantee", cfg.Guarantee.String(), "grpc", grpcLis.Addr().String())

	// Intake: one receiver per consumer feeds the dispatcher.
	intakeCtx, stopIntake := context.WithCancel(runCtx)
	defer stopIntake()
	received := make(chan delivery)
	var intake sync.WaitGroup
	var receiveErr error
	var receiveErrOnce sync.Once
	for _, c := range consumers {
		intake.Go(func() {
			if err := receive(intakeCtx, c, received); err != nil {
				receiveErrOnce.Do(func() { receiveErr = err })
				stopIntake()
			}
		})
	}
	var feed <-chan delivery = received
	var idle *idleTimer
	if cfg.KillAfterIdle > 0 {
		idle = &idleTimer{d: cfg.KillAfterIdle}
		feed = idle.watch(intakeCtx, received, &intake, stopIntake)
	}
	var dispatching sync.WaitGroup
	dispatching.Go(func() { proc.dispatch(intakeCtx, feed) })

	// Wait for a stop: SIGTERM, the health watchdog, idleness or a broken consumer.
	<-intakeCtx.Done()
	stopIntake()
	cause := context.Cause(runCtx)
	logger.Info("instance stopping", "reason", stopReason(cause, receiveErr, idle))

	// Drain: calls in progress finish, their outputs are persisted and their inputs
	// settled, within drainTimeout; after it, calls are cancelled and sends abandoned.
	drained := waitAll(drainTimeout, func() {
		dispatching.Wait()
		intake.Wait()
		fctx, cancel := context.WithTimeout(hardCtx, drainTimeout)
		defer cancel()
		if err := errors.Join(prods.flush(fctx), replies.flush(fctx)); err != nil {
			logger.Warn("flushing outputs", "err", err)
		}
		proc.inflight.Wait()
	})
	if !drained {
		logger.Warn("in-flight inputs did not finish in time; they will be redelivered", "timeout", drainTimeout)
		hardStop()
		waitAll(closeTimeout, func() { dispatching.Wait(); intake.Wait(); proc.inflight.Wait() })
	}
	hardStop()
	waitAll(closeTimeout, snd.retries.Wait)

	logger.Info("instance drained; closing")
	var nhc *noHealthCheckError
	switch {
	case errors.As(cause, &nhc):
		return cause
	case receiveErr != nil:
		return receiveErr
	}
	return nil
}

func subscriptionTypeName(t pulsar.SubscriptionType) string {
	switch t {
	case pulsar.Exclusive:
		return "Exclusive"
	case pulsar.Failover:
		return "Failover"
	case pulsar.KeyShared:
		return "Key_Shared"
	default:
		return "Shared"
	}
}

func stopReason(cause, receiveErr error, idle *idleTimer) string {
	switch {
	case receiveErr != nil:
		return receiveErr.Error()
	case idle != nil && idle.fired():
		return "idle for killAfterIdleMs"
	case cause != nil && !errors.Is(cause, context.Canceled):
		return cause.Error()
	default:
		return "signal"
	}
}

// waitAll runs wait and reports whether it returned within d. When it does not, the
// goroutine running it stays until wait returns (the process is about to exit).
func waitAll(d time.Duration, wait func()) bool {
	done := make(chan struct{})
	go func() { // owned by done; see the doc comment for the timeout case
		wait()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// receive hands every message c delivers to out until ctx is done. It returns an error only
// when the consumer breaks.
func receive(ctx context.Context, c pulsar.Consumer, out chan<- delivery) error {
	for {
		msg, err := c.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("receiving from subscription %s: %w", c.Subscription(), err)
		}
		select {
		case out <- delivery{from: c, msg: msg}:
		case <-ctx.Done():
			return nil // not acked: the broker redelivers it
		}
	}
}

// subscribe creates one consumer per input, closing those already made when one fails.
func subscribe(client pulsar.Client, cfg *Config) ([]pulsar.Consumer, error) {
	var consumers []pulsar.Consumer
	for _, in := range cfg.Inputs {
		c, err := client.Subscribe(consumerOptions(cfg, in))
		if err != nil {
			for _, c := range consumers {
				c.Close()
			}
			return nil, fmt.Errorf("subscribing %s to %s: %w", cfg.Subscription, in.Topic, err)
		}
		consumers = append(consumers, c)
	}
	return consumers, nil
}

// consumerOptions are the consumer options of one input.
func consumerOptions(cfg *Config, in Input) pulsar.ConsumerOptions {
	props := componentProperties(&cfg.Info)
	for k, v := range in.Properties {
		props[k] = v
	}
	o := pulsar.ConsumerOptions{
		SubscriptionName:            cfg.Subscription,
		Type:                        cfg.SubscriptionType,
		SubscriptionInitialPosition: cfg.Position,
		Properties:                  props,
		ReceiverQueueSize:           in.ReceiverQueueSize,
		NackRedeliveryDelay:         cfg.NackDelay,
	}
	if in.Regex {
		o.TopicsPattern = in.Topic
	} else {
		o.Topic = in.Topic
	}
	if cfg.MaxRetries > 0 {
		// A message is delivered once plus MaxRetries times; the client then moves it to the
		// dead-letter topic (default <topic>-<subscription>-DLQ) and acks it.
		o.DLQ = &pulsar.DLQPolicy{MaxDeliveries: uint32(cfg.MaxRetries) + 1, DeadLetterTopic: cfg.DeadLetterTopic}
	}
	if cfg.RetryBackoff > 0 {
		o.NackBackoffPolicy = backoff{first: cfg.RetryBackoff, max: max(cfg.RetryBackoff, maxRetryBackoff)}
	}
	return o
}

// serve starts the gRPC InstanceControl server and the metrics server on their listeners and
// returns the function that stops both and waits for them.
func serve(st *stats, hc *health, instanceID int, grpcLis, metricsLis net.Listener, logger *slog.Logger) func() {
	gs := grpc.NewServer()
	pb.RegisterInstanceControlServer(gs, &control{stats: st, instanceID: instanceID, health: hc})
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := gs.Serve(grpcLis); err != nil {
			logger.Error("InstanceControl server", "err", err)
		}
	})
	var hs *http.Server
	if metricsLis != nil {
		hs = &http.Server{Handler: metricsHandler(st), ReadHeaderTimeout: 10 * time.Second}
		wg.Go(func() {
			if err := hs.Serve(metricsLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("metrics server", "err", err)
			}
		})
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			if !waitAll(closeTimeout, gs.GracefulStop) {
				gs.Stop()
			}
			if hs != nil {
				ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
				defer cancel()
				if err := hs.Shutdown(ctx); err != nil {
					logger.Warn("stopping the metrics server", "err", err)
				}
			}
			wg.Wait()
		})
	}
}

// metricsHandler serves Prometheus text at / (where the worker scrapes) and /metrics.
func metricsHandler(st *stats) http.Handler {
	h := promhttp.HandlerFor(st.registry, promhttp.HandlerOpts{})
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", h)
	mux.Handle("GET /metrics", h)
	return mux
}

// resetEvery zeroes the _1min values every period until ctx is done.
func resetEvery(ctx context.Context, st *stats, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			st.resetWindow()
		}
	}
}

// idleTimer stops intake after a period without input (killAfterIdleMs).
type idleTimer struct {
	d    time.Duration
	mu   sync.Mutex
	fire bool
}

func (t *idleTimer) fired() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.fire
}

// watch relays in to the returned channel and calls stop when nothing arrived for d. The
// relay goroutine joins wg and ends with ctx.
func (t *idleTimer) watch(ctx context.Context, in <-chan delivery, wg *sync.WaitGroup, stop func()) <-chan delivery {
	out := make(chan delivery)
	wg.Go(func() {
		timer := time.NewTimer(t.d)
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
				t.mu.Lock()
				t.fire = true
				t.mu.Unlock()
				stop()
			case d := <-in:
				select {
				case out <- d:
				case <-ctx.Done():
					return
				}
				timer.Reset(t.d)
			}
		}
	})
	return out
}
