package host

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the runtime's own collectors; each function's Pulsar Functions metrics are its
// engine.Metrics, registered beside them.
type metrics struct {
	restarts, reloads *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	fnLabels := []string{"fqfn"}
	m := &metrics{
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fnhost_plugin_restarts_total", Help: "Plugin processes restarted after a crash."}, fnLabels),
		reloads:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fnhost_reloads_total", Help: "Hot reloads of a function's binary."}, fnLabels),
	}
	reg.MustRegister(m.restarts, m.reloads)
	return m
}
