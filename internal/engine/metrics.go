package engine

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric bounds, as upstream reports them.
const (
	// MaxLatestExceptions is how many recent exceptions of each kind an instance keeps.
	MaxLatestExceptions = 10
	// maxExceptionLen bounds one kept exception text.
	maxExceptionLen = 1024
	// Window is the period of the _1min values; the launcher calls ResetWindow that often.
	Window = time.Minute
)

// Identity names a function for its metric labels.
type Identity struct {
	Tenant, Namespace, Name, Cluster string
}

// FQFN is tenant/namespace/name.
func (id Identity) FQFN() string { return id.Tenant + "/" + id.Namespace + "/" + id.Name }

// Counts are an instance's counters since start (or since the window began).
type Counts struct {
	Received, Processed, SystemExceptions, UserExceptions int64
	// LatencySumMs and LatencyCount are those of successful inputs, in milliseconds.
	LatencySumMs float64
	LatencyCount int64
}

// AvgLatencyMs is the mean latency of successful inputs in milliseconds, 0 for none.
func (c Counts) AvgLatencyMs() float64 {
	if c.LatencyCount == 0 {
		return 0
	}
	return c.LatencySumMs / float64(c.LatencyCount)
}

// Exception is one recent exception.
type Exception struct {
	Text string
	At   time.Time
}

// Snapshot is what an instance counted: for Pulsar Functions' status and metrics calls.
type Snapshot struct {
	Total, Window  Counts
	LastInvocation time.Time
	// UserExceptions and SystemExceptions are the latest, oldest first.
	UserExceptions, SystemExceptions []Exception
	// UserMetrics are the means of the values recorded under each name.
	UserMetrics map[string]float64
}

// Metrics counts what a function's instances did, in Pulsar Functions' metric families, and is
// a prometheus.Collector of them (unchecked: several functions' Metrics share one registry).
// Safe for concurrent use.
type Metrics struct {
	id        Identity
	now       func() time.Time
	instances []*Instance
	byID      map[int]*Instance

	inFlight        prometheus.Gauge
	retriesExceeded prometheus.Counter
	outputsDropped  prometheus.Counter
}

// NewMetrics returns the metrics of function id whose instances have the ids instanceIDs (at
// least one).
func NewMetrics(id Identity, instanceIDs []int, now func() time.Time) *Metrics {
	if now == nil {
		now = time.Now
	}
	if len(instanceIDs) == 0 {
		instanceIDs = []int{0}
	}
	fn := prometheus.Labels{"fqfn": id.FQFN()}
	m := &Metrics{
		id: id, now: now, byID: map[int]*Instance{},
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "fnhost_invocations_in_flight",
			Help: "Invocations running now.", ConstLabels: fn}),
		retriesExceeded: prometheus.NewCounter(prometheus.CounterOpts{Name: "fnhost_retries_exhausted_total",
			Help: "Inputs that failed their last retry (dead-lettered when a dead-letter topic is set).", ConstLabels: fn}),
		outputsDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "fnhost_outputs_dropped_total",
			Help: "Outputs of a function without an output topic whose input had no reply-to.", ConstLabels: fn}),
	}
	for _, iid := range instanceIDs {
		in := newInstance(id, iid, now)
		m.instances = append(m.instances, in)
		m.byID[iid] = in
	}
	return m
}

// Instance returns the metrics of the i-th instance (an index into the ids given to
// NewMetrics; out of range means the first).
func (m *Metrics) Instance(i int) *Instance {
	if i < 0 || i >= len(m.instances) {
		return m.instances[0]
	}
	return m.instances[i]
}

// InFlight is the gauge of invocations running now.
func (m *Metrics) InFlight() prometheus.Gauge { return m.inFlight }

// ResetWindow zeroes every instance's _1min values.
func (m *Metrics) ResetWindow() {
	for _, in := range m.instances {
		in.resetWindow()
	}
}

// Describe implements prometheus.Collector: it describes nothing, so that the Metrics of
// several functions can share a registry (an unchecked collector).
func (m *Metrics) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, in := range m.instances {
		in.collect(ch)
	}
	ch <- m.inFlight
	ch <- m.retriesExceeded
	ch <- m.outputsDropped
}

// labelNames are Pulsar Functions' metric labels, in Java's order.
var labelNames = []string{"tenant", "namespace", "name", "instance_id", "cluster", "fqfn"}

// Instance counts what one instance did. Safe for concurrent use.
type Instance struct {
	labels      []string // labelNames order
	now         func() time.Time
	latency     prometheus.Summary
	userSummary *prometheus.SummaryVec

	mu             sync.Mutex
	total, window  Counts
	lastInvocation time.Time
	userExc        []Exception // oldest first
	sysExc         []Exception
	userMeans      map[string]*mean
}

type mean struct {
	sum   float64
	count int64
}

func newInstance(id Identity, iid int, now func() time.Time) *Instance {
	in := &Instance{
		labels: []string{id.Tenant,
			// Pulsar Functions put tenant/namespace in the namespace label.
			id.Tenant + "/" + id.Namespace, id.Name, strconv.Itoa(iid), id.Cluster, id.FQFN()},
		now:       now,
		userMeans: map[string]*mean{},
	}
	constLabels := prometheus.Labels{}
	for i, l := range labelNames {
		constLabels[l] = in.labels[i]
	}
	objectives := map[float64]float64{0.5: 0.05, 0.9: 0.01, 0.99: 0.001, 0.999: 0.0001}
	in.latency = prometheus.NewSummary(prometheus.SummaryOpts{
		Name: "pulsar_function_process_latency_ms", Help: "Process latency of successful inputs, in milliseconds.",
		ConstLabels: constLabels, Objectives: objectives,
	})
	in.userSummary = prometheus.NewSummaryVec(prometheus.SummaryOpts{
		Name: "pulsar_function_user_metric", Help: "User defined metric.",
		ConstLabels: constLabels, Objectives: objectives,
	}, []string{"metric"})
	return in
}

// Received counts an input taken for processing.
func (in *Instance) Received() {
	now := in.now()
	in.mu.Lock()
	in.total.Received++
	in.window.Received++
	in.lastInvocation = now
	in.mu.Unlock()
}

// Processed counts an input that succeeded and took latency.
func (in *Instance) Processed(latency time.Duration) {
	ms := float64(latency) / float64(time.Millisecond)
	in.latency.Observe(ms)
	in.mu.Lock()
	for _, c := range [...]*Counts{&in.total, &in.window} {
		c.Processed++
		c.LatencySumMs += ms
		c.LatencyCount++
	}
	in.mu.Unlock()
}

// UserException counts a failure of the function (an error, a panic, its timeout, its
// caller's deadline).
func (in *Instance) UserException(text string) {
	now := in.now()
	in.mu.Lock()
	in.total.UserExceptions++
	in.window.UserExceptions++
	in.userExc = appendException(in.userExc, text, now)
	in.mu.Unlock()
}

// SystemException counts a failure outside the function (not run, outputs not persisted).
func (in *Instance) SystemException(text string) {
	now := in.now()
	in.mu.Lock()
	in.total.SystemExceptions++
	in.window.SystemExceptions++
	in.sysExc = appendException(in.sysExc, text, now)
	in.mu.Unlock()
}

func appendException(list []Exception, text string, at time.Time) []Exception {
	if len(text) > maxExceptionLen {
		text = text[:maxExceptionLen]
	}
	list = append(list, Exception{Text: text, At: at})
	if len(list) > MaxLatestExceptions {
		list = append(list[:0:0], list[len(list)-MaxLatestExceptions:]...)
	}
	return list
}

// RecordMetric observes value into the user metric name (FunctionContext.RecordMetric).
func (in *Instance) RecordMetric(name string, value float64) {
	in.userSummary.WithLabelValues(name).Observe(value)
	in.mu.Lock()
	m := in.userMeans[name]
	if m == nil {
		m = &mean{}
		in.userMeans[name] = m
	}
	m.sum += value
	m.count++
	in.mu.Unlock()
}

// Snapshot returns what the instance counted; with reset it also zeroes the _1min values
// (Pulsar's GetAndResetMetrics).
func (in *Instance) Snapshot(reset bool) Snapshot {
	in.mu.Lock()
	defer in.mu.Unlock()
	s := Snapshot{
		Total: in.total, Window: in.window, LastInvocation: in.lastInvocation,
		UserExceptions:   append([]Exception(nil), in.userExc...),
		SystemExceptions: append([]Exception(nil), in.sysExc...),
		UserMetrics:      make(map[string]float64, len(in.userMeans)),
	}
	for name, v := range in.userMeans {
		s.UserMetrics[name] = v.sum / float64(v.count)
	}
	if reset {
		in.window = Counts{}
	}
	return s
}

func (in *Instance) resetWindow() {
	in.mu.Lock()
	in.window = Counts{}
	in.mu.Unlock()
}

func desc(name, help string, extra ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, append(append([]string(nil), labelNames...), extra...), nil)
}

var (
	descReceived       = desc("pulsar_function_received_total", "Total number of messages received from source.")
	descProcessed      = desc("pulsar_function_processed_successfully_total", "Total number of messages processed successfully.")
	descSystem         = desc("pulsar_function_system_exceptions_total", "Total number of system exceptions.")
	descUser           = desc("pulsar_function_user_exceptions_total", "Total number of user exceptions.")
	descLastInvocation = desc("pulsar_function_last_invocation", "The timestamp of the last invocation of the function, in milliseconds.")
	descReceived1m     = desc("pulsar_function_received_total_1min", "Messages received from source in the last minute.")
	descProcessed1m    = desc("pulsar_function_processed_successfully_total_1min", "Messages processed successfully in the last minute.")
	descSystem1m       = desc("pulsar_function_system_exceptions_total_1min", "System exceptions in the last minute.")
	descUser1m         = desc("pulsar_function_user_exceptions_total_1min", "User exceptions in the last minute.")
	descLatency1m      = desc("pulsar_function_process_latency_ms_1min", "Process latency in milliseconds in the last minute.")
	descUserExc        = desc("pulsar_function_user_exception", "One of the latest user exceptions.", "error")
	descSystemExc      = desc("pulsar_function_system_exception", "One of the latest system exceptions.", "error")
)

// collect sends the instance's metrics: totals as counters, _1min values as gauges (they go
// down when the window resets), latency as summaries.
func (in *Instance) collect(ch chan<- prometheus.Metric) {
	in.latency.Collect(ch)
	in.userSummary.Collect(ch)
	in.mu.Lock()
	defer in.mu.Unlock()
	metric := func(d *prometheus.Desc, t prometheus.ValueType, v float64, extra ...string) {
		labels := in.labels
		if len(extra) > 0 {
			labels = append(append([]string(nil), in.labels...), extra...)
		}
		ch <- prometheus.MustNewConstMetric(d, t, v, labels...)
	}
	metric(descReceived, prometheus.CounterValue, float64(in.total.Received))
	metric(descProcessed, prometheus.CounterValue, float64(in.total.Processed))
	metric(descSystem, prometheus.CounterValue, float64(in.total.SystemExceptions))
	metric(descUser, prometheus.CounterValue, float64(in.total.UserExceptions))
	if !in.lastInvocation.IsZero() {
		metric(descLastInvocation, prometheus.GaugeValue, float64(in.lastInvocation.UnixMilli()))
	} else {
		metric(descLastInvocation, prometheus.GaugeValue, 0)
	}
	metric(descReceived1m, prometheus.GaugeValue, float64(in.window.Received))
	metric(descProcessed1m, prometheus.GaugeValue, float64(in.window.Processed))
	metric(descSystem1m, prometheus.GaugeValue, float64(in.window.SystemExceptions))
	metric(descUser1m, prometheus.GaugeValue, float64(in.window.UserExceptions))
	ch <- prometheus.MustNewConstSummary(descLatency1m, uint64(in.window.LatencyCount), in.window.LatencySumMs, nil, in.labels...)
	seen := map[string]bool{}
	for _, list := range [...]struct {
		d   *prometheus.Desc
		exc []Exception
	}{{descUserExc, in.userExc}, {descSystemExc, in.sysExc}} {
		clear(seen)
		for _, e := range list.exc {
			if !seen[e.Text] {
				seen[e.Text] = true
				metric(list.d, prometheus.GaugeValue, 1, e.Text)
			}
		}
	}
}
