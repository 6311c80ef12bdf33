package instance

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
	pb "github.com/fnhost/fnhost/functions/pf/internal/pfproto"
)

// maxLatestExceptions is how many recent exceptions status and metrics report, as upstream.
const maxLatestExceptions = 10

// maxExceptionLen bounds one reported exception string.
const maxExceptionLen = 1024

// metricsWindow is the period of the _1min values, reset by the instance itself (the worker
// never calls ResetMetrics for process runtimes).
const metricsWindow = time.Minute

// baseLabels are Pulsar Functions' metric labels, in Java's order.
var baseLabels = []string{"tenant", "namespace", "name", "instance_id", "cluster", "fqfn"}

type counts struct {
	received, processed, system, user int64
	latencySumMs                      float64
	latencyCount                      int64
}

type exception struct {
	text string
	at   time.Time
}

type mean struct {
	sum   float64
	count int64
}

// stats counts what the instance did, for gRPC status and metrics and for Prometheus. It is
// safe for concurrent use.
type stats struct {
	labelValues []string
	now         func() time.Time
	userSummary *prometheus.SummaryVec
	registry    *prometheus.Registry

	mu             sync.Mutex
	total, window  counts
	lastInvocation time.Time
	userExc        []exception // oldest first
	sysExc         []exception
	userMetrics    map[string]*mean
}

func newStats(info *call.Info, now func() time.Time) *stats {
	s := &stats{
		labelValues: []string{
			info.Tenant,
			// Pulsar Functions put tenant/namespace in the namespace label.
			info.Tenant + "/" + info.Namespace,
			info.Name,
			strconv.Itoa(info.InstanceID),
			info.ClusterName,
			info.FQFN(),
		},
		now:         now,
		userMetrics: map[string]*mean{},
		registry:    prometheus.NewRegistry(),
	}
	constLabels := prometheus.Labels{}
	for i, l := range baseLabels {
		constLabels[l] = s.labelValues[i]
	}
	s.userSummary = prometheus.NewSummaryVec(prometheus.SummaryOpts{
		Name:        "pulsar_function_user_metric",
		Help:        "User defined metric.",
		ConstLabels: constLabels,
		Objectives:  map[float64]float64{0.5: 0.05, 0.9: 0.01, 0.99: 0.001, 0.999: 0.0001},
	}, []string{"metric"})
	s.registry.MustRegister(s, s.userSummary)
	return s
}

func (s *stats) received() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total.received++
	s.window.received++
	s.lastInvocation = s.now()
}

// processed counts an input that succeeded and took latency.
func (s *stats) processed(latency time.Duration) {
	ms := float64(latency) / float64(time.Millisecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range []*counts{&s.total, &s.window} {
		c.processed++
		c.latencySumMs += ms
		c.latencyCount++
	}
}

func (s *stats) userException(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total.user++
	s.window.user++
	s.userExc = appendException(s.userExc, err, s.now())
}

func (s *stats) systemException(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total.system++
	s.window.system++
	s.sysExc = appendException(s.sysExc, err, s.now())
}

func appendException(list []exception, err error, at time.Time) []exception {
	text := err.Error()
	if len(text) > maxExceptionLen {
		text = text[:maxExceptionLen]
	}
	list = append(list, exception{text: text, at: at})
	if len(list) > maxLatestExceptions {
		list = append(list[:0:0], list[len(list)-maxLatestExceptions:]...)
	}
	return list
}

func (s *stats) recordMetric(name string, value float64) {
	s.userSummary.WithLabelValues(name).Observe(value)
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.userMetrics[name]
	if m == nil {
		m = &mean{}
		s.userMetrics[name] = m
	}
	m.sum += value
	m.count++
}

// resetWindow zeroes the _1min values.
func (s *stats) resetWindow() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.window = counts{}
}

func avg(sum float64, n int64) float64 {
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

func msOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func exceptionInfos(list []exception) []*pb.FunctionStatus_ExceptionInformation {
	out := make([]*pb.FunctionStatus_ExceptionInformation, 0, len(list))
	for _, e := range list {
		out = append(out, &pb.FunctionStatus_ExceptionInformation{ExceptionString: e.text, MsSinceEpoch: e.at.UnixMilli()})
	}
	return out
}

// status is what GetFunctionStatus returns; times are Unix milliseconds, latency milliseconds.
func (s *stats) status(instanceID int) *pb.FunctionStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &pb.FunctionStatus{
		Running:                  true,
		NumReceived:              s.total.received,
		NumSuccessfullyProcessed: s.total.processed,
		NumUserExceptions:        s.total.user,
		LatestUserExceptions:     exceptionInfos(s.userExc),
		NumSystemExceptions:      s.total.system,
		LatestSystemExceptions:   exceptionInfos(s.sysExc),
		AverageLatency:           avg(s.total.latencySumMs, s.total.latencyCount),
		LastInvocationTime:       msOrZero(s.lastInvocation),
		InstanceId:               strconv.Itoa(instanceID),
	}
}

// metrics is what GetMetrics returns; with reset it also zeroes the _1min values.
func (s *stats) metrics(reset bool) *pb.MetricsData {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := &pb.MetricsData{
		ReceivedTotal:                   s.total.received,
		ReceivedTotal_1Min:              s.window.received,
		ProcessedSuccessfullyTotal:      s.total.processed,
		ProcessedSuccessfullyTotal_1Min: s.window.processed,
		SystemExceptionsTotal:           s.total.system,
		SystemExceptionsTotal_1Min:      s.window.system,
		UserExceptionsTotal:             s.total.user,
		UserExceptionsTotal_1Min:        s.window.user,
		AvgProcessLatency:               avg(s.total.latencySumMs, s.total.latencyCount),
		AvgProcessLatency_1Min:          avg(s.window.latencySumMs, s.window.latencyCount),
		LastInvocation:                  msOrZero(s.lastInvocation),
		UserMetrics:                     make(map[string]float64, len(s.userMetrics)),
	}
	for name, v := range s.userMetrics {
		m.UserMetrics[name] = avg(v.sum, v.count)
	}
	if reset {
		s.window = counts{}
	}
	return m
}

func desc(name, help string, extra ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, append(append([]string(nil), baseLabels...), extra...), nil)
}

var (
	descProcessed      = desc("pulsar_function_processed_successfully_total", "Total number of messages processed successfully.")
	descSystem         = desc("pulsar_function_system_exceptions_total", "Total number of system exceptions.")
	descUser           = desc("pulsar_function_user_exceptions_total", "Total number of user exceptions.")
	descLatency        = desc("pulsar_function_process_latency_ms", "Process latency in milliseconds.")
	descLastInvocation = desc("pulsar_function_last_invocation", "The timestamp of the last invocation of the function, in milliseconds.")
	descReceived       = desc("pulsar_function_received_total", "Total number of messages received from source.")
	descProcessed1m    = desc("pulsar_function_processed_successfully_total_1min", "Messages processed successfully in the last minute.")
	descSystem1m       = desc("pulsar_function_system_exceptions_total_1min", "System exceptions in the last minute.")
	descUser1m         = desc("pulsar_function_user_exceptions_total_1min", "User exceptions in the last minute.")
	descLatency1m      = desc("pulsar_function_process_latency_ms_1min", "Process latency in milliseconds in the last minute.")
	descReceived1m     = desc("pulsar_function_received_total_1min", "Messages received from source in the last minute.")
	descUserExc        = desc("pulsar_function_user_exception", "One of the latest user exceptions.", "error")
	descSystemExc      = desc("pulsar_function_system_exception", "One of the latest system exceptions.", "error")
)

// Describe implements prometheus.Collector.
func (s *stats) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descProcessed, descSystem, descUser, descLatency, descLastInvocation, descReceived,
		descProcessed1m, descSystem1m, descUser1m, descLatency1m, descReceived1m, descUserExc, descSystemExc,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. Counters are exposed as gauges, as upstream does:
// their _1min twins go down when the window resets.
func (s *stats) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64, extra ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append(append([]string(nil), s.labelValues...), extra...)...)
	}
	gauge(descProcessed, float64(s.total.processed))
	gauge(descSystem, float64(s.total.system))
	gauge(descUser, float64(s.total.user))
	gauge(descLastInvocation, float64(msOrZero(s.lastInvocation)))
	gauge(descReceived, float64(s.total.received))
	gauge(descProcessed1m, float64(s.window.processed))
	gauge(descSystem1m, float64(s.window.system))
	gauge(descUser1m, float64(s.window.user))
	gauge(descReceived1m, float64(s.window.received))
	ch <- prometheus.MustNewConstSummary(descLatency, uint64(s.total.latencyCount), s.total.latencySumMs, nil, s.labelValues...)
	ch <- prometheus.MustNewConstSummary(descLatency1m, uint64(s.window.latencyCount), s.window.latencySumMs, nil, s.labelValues...)
	seen := map[string]bool{}
	for _, list := range []struct {
		d   *prometheus.Desc
		exc []exception
	}{{descUserExc, s.userExc}, {descSystemExc, s.sysExc}} {
		clear(seen)
		for _, e := range list.exc {
			if !seen[e.text] {
				seen[e.text] = true
				gauge(list.d, 1, e.text)
			}
		}
	}
}
