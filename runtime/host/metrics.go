package host

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names and labels are Pulsar Functions' own (ComponentStatsManager), so dashboards made
// for functions in the worker work for functions in the host runtime; latency is in ms.
var instanceLabels = []string{"tenant", "namespace", "name", "instance_id", "cluster", "fqfn"}

// metrics is the runtime's Prometheus collectors, registered on one registry.
type metrics struct {
	received, processed, userExc, sysExc             *prometheus.CounterVec
	received1m, processed1m, userExc1m, sysExc1m     *prometheus.GaugeVec
	latency                                          *prometheus.SummaryVec
	lastInvocation                                   *prometheus.GaugeVec
	userMetric                                       *prometheus.SummaryVec
	restarts, reloads, deadLettered, unclaimedOutput *prometheus.CounterVec
	inFlight                                         *prometheus.GaugeVec

	mu      sync.Mutex
	windows map[*labels]bool // label sets with a 1-minute window, to reset
}

func newMetrics(reg prometheus.Registerer) *metrics {
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, instanceLabels)
	}
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, instanceLabels)
	}
	fnLabels := []string{"fqfn"}
	m := &metrics{
		received:    counter("pulsar_function_received_total", "Inputs received."),
		processed:   counter("pulsar_function_processed_successfully_total", "Inputs processed successfully."),
		userExc:     counter("pulsar_function_user_exceptions_total", "Inputs the function failed (error or panic)."),
		sysExc:      counter("pulsar_function_system_exceptions_total", "Inputs that failed outside the function (plugin crash, publish)."),
		received1m:  gauge("pulsar_function_received_total_1min", "Inputs received in the current minute."),
		processed1m: gauge("pulsar_function_processed_successfully_total_1min", "Inputs processed successfully in the current minute."),
		userExc1m:   gauge("pulsar_function_user_exceptions_total_1min", "User exceptions in the current minute."),
		sysExc1m:    gauge("pulsar_function_system_exceptions_total_1min", "System exceptions in the current minute."),
		latency: prometheus.NewSummaryVec(prometheus.SummaryOpts{
			Name: "pulsar_function_process_latency_ms", Help: "Processing latency of successful inputs, in milliseconds.",
			Objectives: map[float64]float64{0.5: 0.05, 0.9: 0.01, 0.99: 0.001},
		}, instanceLabels),
		lastInvocation: gauge("pulsar_function_last_invocation", "Time of the last invocation, Unix milliseconds."),
		userMetric: prometheus.NewSummaryVec(prometheus.SummaryOpts{
			Name: "pulsar_function_user_metric", Help: "Values the function recorded with RecordMetric.",
			Objectives: map[float64]float64{0.5: 0.05, 0.9: 0.01, 0.99: 0.001, 0.999: 0.0001},
		}, append(append([]string(nil), instanceLabels...), "metric")),
		restarts:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fnhost_plugin_restarts_total", Help: "Plugin processes restarted after a crash."}, fnLabels),
		reloads:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fnhost_reloads_total", Help: "Hot reloads of a function's binary."}, fnLabels),
		deadLettered:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fnhost_retries_exhausted_total", Help: "Inputs that failed their last retry (dead-lettered when a dead-letter topic is set)."}, fnLabels),
		unclaimedOutput: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fnhost_outputs_dropped_total", Help: "Outputs of functions without an output topic, in Pulsar mode."}, fnLabels),
		inFlight:        prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "fnhost_invocations_in_flight", Help: "Invocations running now."}, fnLabels),
		windows:         map[*labels]bool{},
	}
	reg.MustRegister(m.received, m.processed, m.userExc, m.sysExc, m.received1m, m.processed1m, m.userExc1m,
		m.sysExc1m, m.latency, m.lastInvocation, m.userMetric, m.restarts, m.reloads, m.deadLettered,
		m.unclaimedOutput, m.inFlight)
	return m
}

// labels is the label set of one function instance (slot).
type labels struct {
	values []string // instanceLabels order
	fqfn   string
}

func newLabels(tenant, namespace, name string, instance int, cluster string) *labels {
	fqfn := tenant + "/" + namespace + "/" + name
	return &labels{values: []string{tenant, tenant + "/" + namespace, name, strconv.Itoa(instance), cluster, fqfn}, fqfn: fqfn}
}

func (m *metrics) track(l *labels) {
	m.mu.Lock()
	m.windows[l] = true
	m.mu.Unlock()
}

// slotMetrics are the per-input metrics of one pool slot.
type slotMetrics struct {
	received, processed, userExc, sysExc prometheus.Counter
	received1m, processed1m              prometheus.Gauge
	userExc1m, sysExc1m, lastInvocation  prometheus.Gauge
	latency                              prometheus.Observer
}

// newSlotMetrics looks up the children of l. They stay valid: the host never deletes a label
// set, and resetWindows sets the same children to 0. The host tracks l's windows when it
// creates the function.
func newSlotMetrics(m *metrics, l *labels) *slotMetrics {
	v := l.values
	return &slotMetrics{
		received:       m.received.WithLabelValues(v...),
		processed:      m.processed.WithLabelValues(v...),
		userExc:        m.userExc.WithLabelValues(v...),
		sysExc:         m.sysExc.WithLabelValues(v...),
		received1m:     m.received1m.WithLabelValues(v...),
		processed1m:    m.processed1m.WithLabelValues(v...),
		userExc1m:      m.userExc1m.WithLabelValues(v...),
		sysExc1m:       m.sysExc1m.WithLabelValues(v...),
		lastInvocation: m.lastInvocation.WithLabelValues(v...),
		latency:        m.latency.WithLabelValues(v...),
	}
}

func (sm *slotMetrics) onReceived() {
	sm.received.Inc()
	sm.received1m.Inc()
	sm.lastInvocation.Set(float64(time.Now().UnixMilli()))
}

func (sm *slotMetrics) onSuccess(elapsed time.Duration) {
	sm.processed.Inc()
	sm.processed1m.Inc()
	sm.latency.Observe(float64(elapsed) / float64(time.Millisecond))
}

func (sm *slotMetrics) onUserException() {
	sm.userExc.Inc()
	sm.userExc1m.Inc()
}

func (sm *slotMetrics) onSystemException() {
	sm.sysExc.Inc()
	sm.sysExc1m.Inc()
}

func (m *metrics) onUserMetric(l *labels, name string, v float64) {
	m.userMetric.WithLabelValues(append(append([]string(nil), l.values...), name)...).Observe(v)
}

// resetWindows zeroes the 1-minute gauges; the host calls it every minute.
func (m *metrics) resetWindows() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for l := range m.windows {
		m.received1m.WithLabelValues(l.values...).Set(0)
		m.processed1m.WithLabelValues(l.values...).Set(0)
		m.userExc1m.WithLabelValues(l.values...).Set(0)
		m.sysExc1m.WithLabelValues(l.values...).Set(0)
	}
}
