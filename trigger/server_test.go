package trigger

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSyncOutputs(t *testing.T) {
	t.Parallel()
	s := newServer(t, newFake(), nil)
	tests := []struct {
		name, path, body string
		headers          map[string]string
		status           int
		contentType      string
		count            string
		want             string
	}{
		{name: "single output, request content type", path: "/function/echo", body: "hello",
			headers: map[string]string{"Content-Type": "text/plain"}, status: 200, contentType: "text/plain", count: "1", want: "hello"},
		{name: "single output, long form", path: "/v1/functions/public/default/echo/invoke", body: "hi",
			status: 200, contentType: "application/octet-stream", count: "1", want: "hi"},
		{name: "zero outputs", path: "/function/none", body: "x", status: 204, count: "0"},
		{name: "several outputs", path: "/function/multi", body: "a,b", status: 200,
			contentType: "application/json; charset=utf-8", count: "2",
			want: `[{"seq":0,"payload":"a","key":"k-a"},{"seq":1,"payload":"b","key":"k-b"}]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := do(s, http.MethodPost, tc.path, tc.body, tc.headers)
			require.Equal(t, tc.status, w.Code, w.Body.String())
			assert.Len(t, w.Header().Get(headerInvocationID), 26)
			assert.Equal(t, tc.count, w.Header().Get(headerOutputCount))
			assert.Equal(t, tc.contentType, w.Header().Get("Content-Type"))
			if strings.HasPrefix(tc.contentType, "application/json") {
				assert.JSONEq(t, tc.want, w.Body.String())
			} else {
				assert.Equal(t, tc.want, w.Body.String())
			}
		})
	}
}

func TestSyncBinaryOutputsAsBase64(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.set("bin", func(_ context.Context, _ *Request, emit func(Output) error) (Result, error) {
		if err := emit(Output{Payload: []byte{0xff, 0x00}}); err != nil {
			return Result{}, err
		}
		return Result{}, emit(Output{Payload: []byte("ok"), ContentType: "text/plain"})
	})
	w := do(newServer(t, f, nil), http.MethodPost, "/function/bin", "", nil)
	require.Equal(t, 200, w.Code)
	assert.JSONEq(t, `[{"seq":0,"payload_base64":"/wA="},{"seq":1,"payload":"ok","content_type":"text/plain"}]`, w.Body.String())
	var outs []Output
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &outs))
	assert.Equal(t, []byte{0xff, 0x00}, outs[0].Payload)
}

func TestHeaderMapping(t *testing.T) {
	t.Parallel()
	f := newFake()
	s := newServer(t, f, func(c *Config) { c.MaxTimeout = time.Minute })
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	before := time.Now()
	w := do(s, http.MethodPost, "/function/echo", "payload", map[string]string{
		"X-Message-Key":             "user-42",
		"X-Message-Property-Region": "eu-west",
		"x-message-property-tier":   "gold",
		"X-Timeout":                 "2500",
		"Content-Type":              "application/json",
		"traceparent":               tp,
		"tracestate":                "vendor=abc",
	})
	require.Equal(t, 200, w.Code, w.Body.String())
	req := f.lastCall(t)
	assert.Equal(t, w.Header().Get(headerInvocationID), req.ID)
	assert.Equal(t, []byte("payload"), req.Payload)
	assert.Equal(t, "user-42", req.Key)
	assert.Equal(t, map[string]string{"region": "eu-west", "tier": "gold"}, req.Properties)
	assert.Equal(t, "application/json", req.ContentType)
	assert.Equal(t, tp, req.TraceParent)
	assert.Equal(t, "vendor=abc", req.TraceState)
	assert.WithinRange(t, req.Deadline, before.Add(2500*time.Millisecond), time.Now().Add(2500*time.Millisecond))
	// The single output's key, properties and content type come back as headers.
	assert.Equal(t, "user-42", w.Header().Get("X-Message-Key"))
	assert.Equal(t, "eu-west", w.Header().Get("X-Message-Property-Region"))
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))

	t.Run("X-Timeout is capped and defaulted", func(t *testing.T) {
		before := time.Now()
		require.Equal(t, 200, do(s, http.MethodPost, "/function/echo", "", map[string]string{"X-Timeout": "1h"}).Code)
		assert.WithinRange(t, f.lastCall(t).Deadline, before.Add(time.Minute), time.Now().Add(time.Minute))
		before = time.Now()
		require.Equal(t, 200, do(s, http.MethodPost, "/function/echo", "", nil).Code)
		assert.WithinRange(t, f.lastCall(t).Deadline, before.Add(30*time.Second), time.Now().Add(30*time.Second))
	})
	t.Run("tracestate without traceparent is dropped", func(t *testing.T) {
		require.Equal(t, 200, do(s, http.MethodPost, "/function/echo", "", map[string]string{"tracestate": "a=b"}).Code)
		assert.Empty(t, f.lastCall(t).TraceState)
	})
}

func TestErrors(t *testing.T) {
	t.Parallel()
	s := newServer(t, newFake(), func(c *Config) { c.MaxBodyBytes = 16 })
	s.callback.lookup = fakeLookup
	long := "/v1/functions/public/default/echo/invoke"
	tests := []struct {
		name, method, path, body string
		headers                  map[string]string
		status                   int
		code                     string
		message                  string // a part of the message
		retryAfter, hasID        bool
	}{
		{"unknown function", "POST", "/function/nope", "", nil, 404, codeFunctionNotFound, "public/default/nope", false, true},
		{"unknown function long form", "POST", "/v1/functions/acme/prod/nope/invoke", "", nil, 404, codeFunctionNotFound, "acme/prod/nope", false, true},
		{"bad function name", "POST", "/function/bad%20name", "", nil, 400, codeInvalidName, "bad name", false, false},
		{"body too large", "POST", "/function/echo", strings.Repeat("x", 17), nil, 413, codePayloadTooLarge, "16 bytes", false, true},
		{"bad X-Timeout", "POST", long, "", map[string]string{"X-Timeout": "soon"}, 400, codeInvalidHeader, "X-Timeout", false, true},
		{"zero X-Timeout", "POST", long, "", map[string]string{"X-Timeout": "0"}, 400, codeInvalidHeader, "positive", false, true},
		{"negative X-Timeout", "POST", long, "", map[string]string{"X-Timeout": "-5s"}, 400, codeInvalidHeader, "positive", false, true},
		{"reserved property", "POST", long, "", map[string]string{"X-Message-Property-fnhost-deadline": "1"}, 400, codeInvalidHeader, "reserved", false, true},
		{"property with control character", "POST", long, "", map[string]string{"X-Message-Property-a": "x\x01y"}, 400, codeInvalidHeader, "control", false, true},
		{"malformed traceparent", "POST", long, "", map[string]string{"traceparent": "00-xyz-01"}, 400, codeInvalidHeader, "traceparent", false, true},
		{"bad content type", "POST", long, "", map[string]string{"Content-Type": "text/"}, 400, codeInvalidHeader, "Content-Type", false, true},
		{"Last-Event-ID on invoke", "POST", long, "", map[string]string{"Last-Event-ID": "3"}, 400, codeInvalidHeader, "Last-Event-ID", false, true},
		{"relative callback URL", "POST", long, "", map[string]string{"X-Callback-Url": "/hook"}, 400, codeInvalidCallbackURL, "X-Callback-Url", false, true},
		{"ftp callback URL", "POST", long, "", map[string]string{"X-Callback-Url": "ftp://example.com/x"}, 400, codeInvalidCallbackURL, "http", false, true},
		{"metadata callback URL", "POST", long, "", map[string]string{"X-Callback-Url": "http://169.254.169.254/latest/meta-data"}, 400, codeInvalidCallbackURL, "link-local", false, true},
		{"private callback URL", "POST", long, "", map[string]string{"X-Callback-Url": "http://10.0.0.7:8080/hook"}, 400, codeInvalidCallbackURL, "10.0.0.7 is a private address", false, true},
		{"IPv4-mapped private callback URL", "POST", long, "", map[string]string{"X-Callback-Url": "http://[::ffff:192.168.1.1]/hook"}, 400, codeInvalidCallbackURL, "private", false, true},
		{"unique-local IPv6 callback URL", "POST", long, "", map[string]string{"X-Callback-Url": "http://[fd00::1]/hook"}, 400, codeInvalidCallbackURL, "private", false, true},
		{"unspecified callback URL", "POST", long, "", map[string]string{"X-Callback-Url": "http://0.0.0.0:9000/"}, 400, codeInvalidCallbackURL, "unspecified", false, true},
		{"multicast callback URL", "POST", long, "", map[string]string{"X-Callback-Url": "http://224.0.0.1/"}, 400, codeInvalidCallbackURL, "multicast", false, true},
		{"NAT64 metadata callback URL", "POST", long, "", map[string]string{"X-Callback-Url": "http://[64:ff9b::a9fe:a9fe]/"}, 400, codeInvalidCallbackURL, "embedding 169.254.169.254", false, true},
		{"callback host resolving to private", "POST", long, "", map[string]string{"X-Callback-Url": "https://intranet.test/hook"}, 400, codeInvalidCallbackURL, `host "intranet.test" resolves to 10.9.8.7`, false, true},
		{"callback host resolving to public and private", "POST", long, "", map[string]string{"X-Callback-Url": "https://mixed.test/hook"}, 400, codeInvalidCallbackURL, "172.16.0.1 is a private address", false, true},
		{"callback host not resolving", "POST", long, "", map[string]string{"X-Callback-Url": "https://nx.test/hook"}, 400, codeInvalidCallbackURL, "does not resolve", false, true},
		{"callback host lookup failing", "POST", long, "", map[string]string{"X-Callback-Url": "https://timeout.test/hook"}, 503, codeUnavailable, "X-Callback-Url", true, true},
		{"bad Last-Event-ID", "GET", "/v1/invocations/abc/events", "", map[string]string{"Last-Event-ID": "x1"}, 400, codeInvalidHeader, "Last-Event-ID", false, false},
		{"negative Last-Event-ID", "GET", "/v1/invocations/abc/events", "", map[string]string{"Last-Event-ID": "-1"}, 400, codeInvalidHeader, "Last-Event-ID", false, false},
		{"unknown invocation", "GET", "/v1/invocations/" + newID(), "", nil, 404, codeInvocationNotFound, "no invocation", false, false},
		{"unknown invocation events", "GET", "/v1/invocations/" + newID() + "/events", "", nil, 404, codeInvocationNotFound, "no events", false, false},
		{"unknown catalogue function", "GET", "/v1/functions/public/default/nope", "", nil, 404, codeFunctionNotFound, "nope", false, false},
		{"wrong method on invoke", "GET", long, "", nil, 405, codeMethodNotAllowed, "POST", false, false},
		{"wrong method on healthz", "DELETE", "/healthz", "", nil, 405, codeMethodNotAllowed, "GET", false, false},
		{"unknown route", "GET", "/v2/nothing", "", nil, 404, codeNotFound, "/v2/nothing", false, false},
		{"function error", "POST", "/function/fail", "", nil, 502, codeFunctionError, "boom: bad input", false, true},
		{"function panic", "POST", "/function/panic", "", nil, 502, codeFunctionPanic, "kaboom", false, true},
		{"deadline", "POST", "/function/slow", "", map[string]string{"X-Timeout": "20ms"}, 504, codeDeadline, "deadline", false, true},
		{"invoker unavailable", "POST", "/function/unavailable", "", nil, 503, codeUnavailable, "plugin restarting", true, true},
		{"invoker overloaded", "POST", "/function/overloaded", "", nil, 429, codeTooManyRequests, "busy", true, true},
		{"invoker bug", "POST", "/function/broken", "", nil, 500, codeInternal, "invoker bug", false, true},
		{"handler panic is recovered", "POST", "/function/crash", "", nil, 500, codeInternal, "internal", false, true},
		{"publish without publisher", "POST", "/v1/topics/public/default/events", "x", nil, 501, codeNotSupported, "not supported", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := do(s, tc.method, tc.path, tc.body, tc.headers)
			require.Equal(t, tc.status, w.Code, w.Body.String())
			e := errorOf(t, w)
			assert.Equal(t, tc.code, e.Code)
			assert.Contains(t, e.Message, tc.message)
			if tc.retryAfter {
				assert.Equal(t, "1", w.Header().Get("Retry-After"))
			}
			if tc.hasID {
				assert.Len(t, e.InvocationID, 26)
				assert.Equal(t, e.InvocationID, w.Header().Get(headerInvocationID))
			}
		})
	}
}

func TestConcurrencyLimit(t *testing.T) {
	t.Parallel()
	s, g := gatedServer(t, func(c *Config) { c.MaxConcurrent = 1; c.RetryAfter = 3 * time.Second })
	first := make(chan *httptest.ResponseRecorder, 1)
	go func() { first <- do(s, http.MethodPost, "/function/gated", "", nil) }()
	recv(t, g.started, "first invocation to start")

	w := do(s, http.MethodPost, "/function/echo", "", nil)
	require.Equal(t, http.StatusTooManyRequests, w.Code)
	assert.Equal(t, codeTooManyRequests, errorOf(t, w).Code)
	assert.Equal(t, "3", w.Header().Get("Retry-After"))

	close(g.out)
	require.Equal(t, http.StatusNoContent, recv(t, first, "first response").Code)
	assert.Equal(t, 200, do(s, http.MethodPost, "/function/echo", "", nil).Code)
}

func TestCatalogue(t *testing.T) {
	t.Parallel()
	s := newServer(t, newFake(), nil)
	w := do(s, http.MethodGet, "/v1/functions", "", nil)
	require.Equal(t, 200, w.Code)
	assert.JSONEq(t, `{"functions":[
		{"id":"public/default/echo","tenant":"public","namespace":"default","name":"echo","inputs":["persistent://public/default/echo-in"],
		 "runtime":"embedded","timeout":"30s","invoke":"/v1/functions/public/default/echo/invoke"},
		{"id":"acme/prod/enrich","tenant":"acme","namespace":"prod","name":"enrich","parallelism":2,"runtime":"embedded",
		 "invoke":"/v1/functions/acme/prod/enrich/invoke"}]}`, w.Body.String())
	w = do(s, http.MethodGet, "/v1/functions/acme/prod/enrich", "", nil)
	require.Equal(t, 200, w.Code)
	assert.Contains(t, w.Body.String(), `"id":"acme/prod/enrich"`)
}

// fakePublisher records the last event published. Safe for concurrent use: parallel subtests
// share one server.
type fakePublisher struct {
	mu    sync.Mutex
	topic Topic
	msg   Message
}

func (p *fakePublisher) Publish(_ context.Context, t Topic, m Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.topic, p.msg = t, m
	return nil
}

// last returns the last event published.
func (p *fakePublisher) last() (Topic, Message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.topic, p.msg
}

func TestPublish(t *testing.T) {
	t.Parallel()
	p := &fakePublisher{}
	s := newServer(t, newFake(), func(c *Config) { c.Publisher = p })
	w := do(s, http.MethodPost, "/v1/topics/acme/prod/clicks", "evt", map[string]string{"X-Message-Key": "k", "X-Message-Property-Src": "web"})
	require.Equal(t, http.StatusAccepted, w.Code, w.Body.String())
	assert.JSONEq(t, `{"topic":"persistent://acme/prod/clicks"}`, w.Body.String())
	topic, msg := p.last()
	assert.Equal(t, Topic{"acme", "prod", "clicks"}, topic)
	assert.Equal(t, Message{Payload: []byte("evt"), Key: "k", Properties: map[string]string{"src": "web"}}, msg)
}

func TestHealthReadyMetrics(t *testing.T) {
	t.Parallel()
	var notReady error
	s := newServer(t, newFake(), func(c *Config) { c.Ready = func(context.Context) error { return notReady } })
	assert.Equal(t, 200, do(s, "GET", "/healthz", "", nil).Code)
	assert.Equal(t, 200, do(s, "GET", "/readyz", "", nil).Code)
	require.Equal(t, 200, do(s, "POST", "/function/echo", "x", nil).Code)
	require.Equal(t, 404, do(s, "POST", "/function/nope", "x", nil).Code)
	require.Equal(t, 502, do(s, "POST", "/v1/functions/public/default/fail/invoke", "x", nil).Code)
	require.Equal(t, 400, do(s, "POST", "/v1/functions/public/default/bad%20name/invoke", "x", nil).Code)
	require.Equal(t, 200, do(s, "GET", "/v1/functions/acme/prod/enrich", "", nil).Code)
	require.Equal(t, 404, do(s, "GET", "/v1/functions/acme/prod/nope", "", nil).Code)

	w := do(s, "GET", "/metrics", "", nil)
	require.Equal(t, 200, w.Code)
	body := w.Body.String()
	assert.Contains(t, body, `fnhost_trigger_requests_total{function="public/default/echo",route="/function/:name",status="200"} 1`)
	assert.Contains(t, body, `fnhost_trigger_requests_total{function="",route="/function/:name",status="404"} 1`)
	// A function's failure keeps its name; a rejected request's name, and a details request's
	// for a function the catalogue does not list, never become a label.
	assert.Contains(t, body, `fnhost_trigger_requests_total{function="public/default/fail",route="/v1/functions/:tenant/:namespace/:name/invoke",status="502"} 1`)
	assert.Contains(t, body, `fnhost_trigger_requests_total{function="",route="/v1/functions/:tenant/:namespace/:name/invoke",status="400"} 1`)
	assert.Contains(t, body, `fnhost_trigger_requests_total{function="acme/prod/enrich",route="/v1/functions/:tenant/:namespace/:name",status="200"} 1`)
	assert.Contains(t, body, `fnhost_trigger_requests_total{function="",route="/v1/functions/:tenant/:namespace/:name",status="404"} 1`)
	assert.Contains(t, body, `fnhost_trigger_request_duration_seconds_count{function="public/default/echo",route="/function/:name"} 1`)
	assert.Contains(t, body, `fnhost_trigger_first_output_seconds_count{function="public/default/echo"} 1`)
	assert.Contains(t, body, "fnhost_trigger_requests_in_flight 1") // this very request
	assert.Contains(t, body, "fnhost_trigger_async_invocations 0")

	require.NoError(t, s.Shutdown(t.Context()))
	w = do(s, "GET", "/readyz", "", nil)
	assert.Equal(t, 503, w.Code)
	assert.Equal(t, codeNotReady, errorOf(t, w).Code)
}

func TestNotReady(t *testing.T) {
	t.Parallel()
	s := newServer(t, newFake(), func(c *Config) {
		c.Ready = func(context.Context) error { return context.DeadlineExceeded }
	})
	w := do(s, "GET", "/readyz", "", nil)
	assert.Equal(t, 503, w.Code)
	assert.Contains(t, errorOf(t, w).Message, "deadline")
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	_, err := New(Config{})
	require.ErrorContains(t, err, "Invoker is required")
	_, err = New(Config{Invoker: newFake(), DefaultTimeout: time.Hour, MaxTimeout: time.Minute, MaxBodyBytes: -1})
	require.ErrorContains(t, err, "DefaultTimeout 1h0m0s exceeds MaxTimeout 1m0s")
	require.ErrorContains(t, err, "MaxBodyBytes is negative")
}
