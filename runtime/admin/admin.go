// Package admin serves the host runtime's operational endpoints over plain net/http:
// Prometheus metrics, liveness, readiness and a JSON status of every function and instance.
package admin

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fnhost/fnhost/runtime/host"
)

// Runtime is what the endpoints read from the runtime.
type Runtime interface {
	// Status describes every function; safe for concurrent use.
	Status() []host.FunctionStatus
	// Ready reports whether every function has a running process.
	Ready() bool
	// Registry holds the runtime's metrics.
	Registry() *prometheus.Registry
}

// StatusResponse is the body of GET /v1/status.
type StatusResponse struct {
	Mode      string                `json:"mode"` // "embedded" or "pulsar"
	Ready     bool                  `json:"ready"`
	Functions []host.FunctionStatus `json:"functions"`
}

// Handler returns the endpoints: GET /metrics, /healthz, /readyz and /v1/status. mode is
// reported in the status.
func Handler(rt Runtime, mode string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(rt.Registry(), promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !rt.Ready() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready: a function has no running process"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, StatusResponse{Mode: mode, Ready: rt.Ready(), Functions: rt.Status()})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	// The client may be gone; there is nobody left to tell.
	_ = enc.Encode(v)
}
