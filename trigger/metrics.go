package trigger

import (
	"net/http"
	"strconv"
	"sync"
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

	// Children of the vectors by label values, so that a request pays one map lookup on a
	// comparable key instead of building, validating and hashing label strings. They hold what
	// the vectors hold (the same label sets), so they are bounded as the vectors are.
	requestChildren sync.Map // requestLabels → *requestChild
	firstChildren   sync.Map // Function → prometheus.Observer
}

// requestLabels are the labels of one request's metrics.
type requestLabels struct {
	route  string
	fn     Function // zero: none
	status int
}

type requestChild struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

// request returns the metrics of requests with these labels.
func (m *metrics) request(l requestLabels) *requestChild {
	if c, ok := m.requestChildren.Load(l); ok {
		return c.(*requestChild)
	}
	fn := ""
	if l.fn.Name != "" {
		fn = l.fn.String()
	}
	c := &requestChild{
		count:    m.requests.WithLabelValues(l.route, fn, strconv.Itoa(l.status)),
		duration: m.duration.WithLabelValues(l.route, fn),
	}
	actual, _ := m.requestChildren.LoadOrStore(l, c)
	return actual.(*requestChild)
}

// observeFirstOutput records the time to the first output of an invocation of fn.
func (m *metrics) observeFirstOutput(fn Function, d time.Duration) {
	o, ok := m.firstChildren.Load(fn)
	if !ok {
		o, _ = m.firstChildren.LoadOrStore(fn, m.firstOutput.WithLabelValues(fn.String()))
	}
	o.(prometheus.Observer).Observe(d.Seconds())
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

// namedFunction returns the function a request's route names, as its parameters give it (not
// checked): zero when the route names none. On the details route only a function the
// catalogue listed (200) counts.
func namedFunction(c *gin.Context, route string, status int) Function {
	if route == routeInvoke || route == routeInvokeShort || route == routeFunction && status == http.StatusOK {
		return functionParams(c)
	}
	return Function{}
}

// functionLabel is namedFunction for the function label of metrics, and zero when the request
// was rejected: names from rejected requests (malformed, unknown, unauthorised) must not grow
// the label set. Malformed names are always rejected (400), so they need no check here.
func functionLabel(c *gin.Context, route string, status int) Function {
	if status >= 400 && status < 500 && status != http.StatusTooManyRequests {
		return Function{}
	}
	return namedFunction(c, route, status)
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
		ch := m.request(requestLabels{route: route, fn: functionLabel(c, route, status), status: status})
		ch.count.Inc()
		ch.duration.Observe(time.Since(start).Seconds())
	}()
	c.Next()
}
