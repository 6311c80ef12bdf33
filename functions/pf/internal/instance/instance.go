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
	"sync/atomic"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
	pb "github.com/fnhost/fnhost/functions/pf/internal/pfproto"
	"github.com/fnhost/fnhost/internal/engine"
	"github.com/fnhost/fnhost/internal/producer"
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
			_ = grpcLis.Close() // unused yet: the failure to listen for metrics is what to report
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
	info    *call.Info
	prods   *producer.Cache
	stop    context.Context // ends at the hard stop: bounds NewOutputMessage's producer creation
	metrics *engine.Instance
	logger  *slog.Logger
}

var _ call.Env = (*env)(nil)

func (e *env) Info() *call.Info { return e.info }
func (e *env) Producer(topic string) (pulsar.Producer, error) {
	return e.prods.Get(e.stop, topic)
}
func (e *env) RecordMetric(name string, value float64) { e.metrics.RecordMetric(name, value) }
func (e *env) Logger() *slog.Logger                    { return e.logger }

// run runs a configured instance on the given listeners (metricsLis may be nil) and closes
// them when it returns.
func run(ctx context.Context, cfg *Config, h call.Handler, stderrLog *slog.Logger, grpcLis, metricsLis net.Listener) (err error) {
	info := &cfg.Info
	stderrLog = stderrLog.With("function", info.FQFN(), "instance_id", info.InstanceID)
	metrics := engine.NewMetrics(engine.Identity{Tenant: info.Tenant, Namespace: info.Namespace, Name: info.Name, Cluster: info.ClusterName},
		[]int{info.InstanceID}, time.Now)
	st := metrics.Instance(0)
	hc := newHealth(time.Now)

	stopServers := serve(metrics, hc, info.InstanceID, grpcLis, metricsLis, stderrLog)
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

	bg.Go(func() { resetEvery(runCtx, metrics, engine.Window) })
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
		st.SystemException(err.Error())
		return fmt.Errorf("creating the Pulsar client for %s: %w", cfg.ServiceURL, err)
	}
	defer client.Close()

	spec := cfg.Details.GetSink().GetProducerSpec()
	sink := &engine.PulsarSink{
		Outputs: producer.New(client, func(topic string) pulsar.ProducerOptions { return producerOptions(topic, spec, info) }, producer.DefaultRetry),
		Replies: producer.New(client, func(topic string) pulsar.ProducerOptions { return replyProducerOptions(topic, spec, info) }, producer.DefaultRetry),
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		if err := sink.Close(cctx); err != nil {
			stderrLog.Warn("closing producers", "err", err)
		}
	}()
	if info.OutputTopic != "" {
		if _, err := sink.Outputs.Get(runCtx, info.OutputTopic); err != nil {
			st.SystemException(err.Error())
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
		st.SystemException(err.Error())
		return err
	}
	defer func() {
		for _, c := range consumers {
			c.Close()
		}
	}()

	intakeCtx, stopIntake := context.WithCancel(runCtx)
	defer stopIntake()
	sources := make([]engine.Source, 0, len(consumers))
	var idle *idleTimer
	if cfg.KillAfterIdle > 0 {
		idle = newIdleTimer(cfg.KillAfterIdle, stopIntake)
		defer idle.stop()
	}
	for _, c := range consumers {
		if idle != nil {
			sources = append(sources, idle.source(c))
		} else {
			sources = append(sources, c)
		}
	}
	eng, err := engine.New(engineConfig(cfg, metrics, logger), &function{
		handler: call.Safe(h),
		env:     &env{info: info, prods: sink.Outputs, stop: hardCtx, metrics: st, logger: logger},
		manual:  cfg.Guarantee == pb.ProcessingGuarantees_MANUAL,
	}, sink, sources...)
	if err != nil {
		return err
	}
	defer eng.Close()

	logger.Info("instance started", "inputs", info.InputTopics, "output", info.OutputTopic,
		"subscription", cfg.Subscription, "subscription_type", subscriptionTypeName(cfg.SubscriptionType),
		"guarantee", cfg.Guarantee.String(), "grpc", grpcLis.Addr().String())

	var receiveErr error
	var running sync.WaitGroup
	running.Go(func() {
		receiveErr = eng.Run(intakeCtx)
		stopIntake()
	})

	// Wait for a stop: SIGTERM, the health watchdog, idleness or a broken consumer.
	<-intakeCtx.Done()
	// Drain: calls in progress finish, their outputs are persisted and their inputs
	// settled, within drainTimeout; after it, calls are cancelled and sends abandoned.
	dctx, cancelDrain := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
	drainErr := eng.Drain(dctx)
	cancelDrain()
	running.Wait()
	cause := context.Cause(runCtx)
	logger.Info("instance stopping", "reason", stopReason(cause, receiveErr, idle))
	if drainErr != nil {
		logger.Warn("draining", "err", drainErr)
	}
	hardStop()

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

// engineConfig is the engine's configuration of the instance: the order follows the
// subscription type, fnhost.concurrency gives the lanes.
func engineConfig(cfg *Config, metrics *engine.Metrics, logger *slog.Logger) engine.Config {
	ec := engine.Config{
		Function:          cfg.Info.FQFN(),
		OutputTopic:       cfg.Info.OutputTopic,
		Lanes:             cfg.Concurrency,
		Timeout:           cfg.Timeout,
		MaxRetries:        cfg.MaxRetries,
		RetryBackoff:      cfg.RetryBackoff,
		ForwardProperties: cfg.ForwardProperties,
		Metrics:           metrics,
		Logger:            logger,
	}
	switch cfg.SubscriptionType {
	case pulsar.Failover, pulsar.Exclusive:
		ec.Order = engine.Strict
	case pulsar.KeyShared:
		ec.Order = engine.KeyOrdered
	default:
		ec.Order = engine.Unordered
	}
	switch cfg.Guarantee {
	case pb.ProcessingGuarantees_ATMOST_ONCE:
		ec.Guarantee = engine.AtMostOnce
	case pb.ProcessingGuarantees_EFFECTIVELY_ONCE:
		ec.Guarantee = engine.EffectivelyOnce
	case pb.ProcessingGuarantees_MANUAL:
		ec.Guarantee = engine.Manual
	default:
		ec.Guarantee = engine.AtLeastOnce
	}
	return ec
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
	if cfg.MaxRetries >= 0 {
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
func serve(metrics *engine.Metrics, hc *health, instanceID int, grpcLis, metricsLis net.Listener, logger *slog.Logger) func() {
	gs := grpc.NewServer()
	pb.RegisterInstanceControlServer(gs, &control{stats: metrics.Instance(0), instanceID: instanceID, health: hc})
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := gs.Serve(grpcLis); err != nil {
			logger.Error("InstanceControl server", "err", err)
		}
	})
	var hs *http.Server
	if metricsLis != nil {
		hs = &http.Server{Handler: metricsHandler(metrics), ReadHeaderTimeout: 10 * time.Second}
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
func metricsHandler(metrics *engine.Metrics) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics)
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", h)
	mux.Handle("GET /metrics", h)
	return mux
}

// resetEvery zeroes the _1min values every period until ctx is done.
func resetEvery(ctx context.Context, metrics *engine.Metrics, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			metrics.ResetWindow()
		}
	}
}

// idleTimer stops intake after a period without input (killAfterIdleMs).
type idleTimer struct {
	t    *time.Timer
	d    time.Duration
	fire atomic.Bool
}

func newIdleTimer(d time.Duration, stop func()) *idleTimer {
	it := &idleTimer{d: d}
	it.t = time.AfterFunc(d, func() {
		it.fire.Store(true)
		stop()
	})
	return it
}

func (t *idleTimer) fired() bool { return t.fire.Load() }

func (t *idleTimer) stop() { t.t.Stop() }

// source returns src, whose every input restarts the timer.
func (t *idleTimer) source(src engine.Source) engine.Source { return idleSource{src, t} }

type idleSource struct {
	engine.Source
	t *idleTimer
}

func (s idleSource) Receive(ctx context.Context) (pulsar.Message, error) {
	m, err := s.Source.Receive(ctx)
	if err == nil {
		s.t.t.Reset(s.t.d)
	}
	return m, err
}
