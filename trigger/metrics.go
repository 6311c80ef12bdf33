package trigger

import (
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the trigger's Prometheus metrics, in a registry of its own (no global state).
type metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	firstOutput *prometheus.HistogramVec
	inFlight    prometheus.Gauge
}

// latencyBuckets span 1 ms to ~5 min.
var latencyBuckets = prometheus.ExponentialBuckets(0.001, 2.5, 15)

func newMetrics(asyncRunning func() float64) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fnhost_trigger_requests_total",
			Help: "HTTP requests by route template, function (tenant/namespace/name, empty when none or unknown) and status.",
		}, []string{"route", "function", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fnhost_trigger_request_duration_seconds",
			Help:    "End-to-end HTTP request latency (for streams: until the stream ended).",
			Buckets: latencyBuckets,
		}, []string{"route", "function"}),
		firstOutput: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fnhost_trigger_first_output_seconds",
			Help:    "Time from the start of an invocation to its first output.",
			Buckets: latencyBuckets,
		}, []string{"function"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fnhost_trigger_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.firstOutput, m.inFlight,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "fnhost_trigger_async_invocations",
			Help: "Async invocations running or delivering their callback.",
		}, asyncRunning),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// instrument counts and times every request.
func (s *Server) instrument(c *gin.Context) {
	m := s.metrics
	m.inFlight.Inc()
	start := time.Now()
	defer func() {
		m.inFlight.Dec()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		status := c.Writer.Status()
		if v, ok := c.Get(keyStatus); ok {
			status = v.(int)
		}
		fn := c.GetString(keyFunction)
		if status >= 400 && status < 500 && status != 429 {
			fn = "" // names from rejected requests (unknown, malformed) must not grow the label set
		}
		m.requests.WithLabelValues(route, fn, strconv.Itoa(status)).Inc()
		m.duration.WithLabelValues(route, fn).Observe(time.Since(start).Seconds())
	}()
	c.Next()
}
