package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/runtime/host"
	"github.com/fnhost/fnhost/runtime/pool"
)

type fakeRuntime struct {
	ready bool
	reg   *prometheus.Registry
}

func (f *fakeRuntime) Status() []host.FunctionStatus {
	return []host.FunctionStatus{{FQFN: "public/default/echo", Pool: pool.Status{Slots: []pool.SlotStatus{{State: pool.Running, Pid: 42}}}}}
}
func (f *fakeRuntime) Ready() bool                    { return f.ready }
func (f *fakeRuntime) Registry() *prometheus.Registry { return f.reg }

func TestEndpoints(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "pulsar_function_received_total"})
	reg.MustRegister(c)
	c.Add(3)
	rt := &fakeRuntime{reg: reg}
	h := Handler(rt, "embedded")
	get := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		return w
	}
	assert.Equal(t, http.StatusOK, get("/healthz").Code)
	assert.Equal(t, http.StatusServiceUnavailable, get("/readyz").Code)
	rt.ready = true
	assert.Equal(t, http.StatusOK, get("/readyz").Code)
	assert.Contains(t, get("/metrics").Body.String(), "pulsar_function_received_total 3")

	w := get("/v1/status")
	require.Equal(t, http.StatusOK, w.Code)
	var st StatusResponse
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &st))
	assert.Equal(t, "embedded", st.Mode)
	assert.Equal(t, 42, st.Functions[0].Pool.Slots[0].Pid)
	assert.True(t, strings.HasPrefix(w.Header().Get("Content-Type"), "application/json"))

	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/status", nil))
	assert.Equal(t, http.StatusMethodNotAllowed, w.Code)
}
