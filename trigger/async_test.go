package trigger

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type callback struct {
	attempt   string
	id        string
	signature string
	body      []byte
}

func TestAsyncWithCallback(t *testing.T) {
	t.Parallel()
	secret := []byte("s3cret")
	got := make(chan callback, 10)
	var calls atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		got <- callback{r.Header.Get("X-Fnhost-Attempt"), r.Header.Get("X-Invocation-Id"), r.Header.Get("X-Fnhost-Signature"), body}
		if calls.Add(1) == 1 {
			http.Error(w, "not yet", http.StatusInternalServerError)
		}
	}))
	t.Cleanup(hook.Close)
	s := newServer(t, newFake(), func(c *Config) {
		c.CallbackSecret = secret
		c.CallbackBackoff, c.CallbackMaxBackoff = time.Millisecond, 5*time.Millisecond
	})

	w := do(s, http.MethodPost, "/function/multi", "x,y", map[string]string{"Prefer": "respond-async", "X-Callback-Url": hook.URL + "/done"})
	require.Equal(t, http.StatusAccepted, w.Code, w.Body.String())
	id := w.Header().Get(headerInvocationID)
	assert.Equal(t, "/v1/invocations/"+id, w.Header().Get("Location"))
	assert.Equal(t, "respond-async", w.Header().Get("Preference-Applied"))
	assert.JSONEq(t, `{"id":"`+id+`","status":"accepted","location":"/v1/invocations/`+id+`","events":"/v1/invocations/`+id+`/events"}`, w.Body.String())

	first := recv(t, got, "first callback")
	second := recv(t, got, "retried callback")
	assert.Equal(t, "1", first.attempt)
	assert.Equal(t, "2", second.attempt)
	assert.Equal(t, id, second.id)
	assert.True(t, hmac.Equal([]byte(Sign(secret, second.body)), []byte(second.signature)), "signature %s", second.signature)
	assert.True(t, strings.HasPrefix(second.signature, "sha256="))
	var rec Invocation
	require.NoError(t, json.Unmarshal(second.body, &rec))
	assert.Equal(t, StatusSucceeded, rec.Status)
	assert.Equal(t, []Output{{Payload: []byte("x"), Key: "k-x"}, {Payload: []byte("y"), Key: "k-y", Seq: 1}}, rec.Outputs)

	w = do(s, http.MethodGet, "/v1/invocations/"+id, "", nil)
	require.Equal(t, 200, w.Code)
	var fetched map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &fetched))
	assert.Equal(t, "succeeded", fetched["status"])
	assert.Equal(t, []any{map[string]any{"seq": 0.0, "payload": "x", "key": "k-x"}, map[string]any{"seq": 1.0, "payload": "y", "key": "k-y"}}, fetched["outputs"])
	for _, k := range []string{"accepted_at", "started_at", "finished_at", "deadline"} {
		assert.Contains(t, fetched, k)
	}
}

func TestCallbackGivesUpOnClientError(t *testing.T) {
	t.Parallel()
	got := make(chan struct{}, 10)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		got <- struct{}{}
		http.Error(w, "gone", http.StatusGone)
	}))
	t.Cleanup(hook.Close)
	s := newServer(t, newFake(), func(c *Config) { c.CallbackBackoff, c.CallbackMaxBackoff = time.Millisecond, time.Millisecond })
	w := do(s, http.MethodPost, "/function/echo", "x", map[string]string{"X-Callback-Url": hook.URL})
	require.Equal(t, http.StatusAccepted, w.Code)
	recv(t, got, "callback")
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	require.NoError(t, s.Shutdown(ctx)) // delivery is over: one attempt only
	assert.Empty(t, got)
}

func TestAsyncStatuses(t *testing.T) {
	t.Parallel()
	s, g := gatedServer(t, nil)
	async := map[string]string{"Prefer": "respond-async"}

	w := do(s, http.MethodPost, "/function/gated", "", async)
	require.Equal(t, http.StatusAccepted, w.Code)
	id := w.Header().Get(headerInvocationID)
	recv(t, g.started, "start")
	assert.Equal(t, StatusRunning, record(t, s, id).Status)
	close(g.out)
	waitStatus(t, s, id, StatusSucceeded)

	for name, want := range map[string]struct {
		status Status
		code   string
	}{
		"fail":  {StatusFailed, codeFunctionError},
		"panic": {StatusFailed, codeFunctionPanic},
		"nope":  {StatusFailed, codeFunctionNotFound},
		"slow":  {StatusTimedOut, codeDeadline},
	} {
		w := do(s, http.MethodPost, "/function/"+name, "", map[string]string{"Prefer": "respond-async", "X-Timeout": "10ms"})
		require.Equal(t, http.StatusAccepted, w.Code, name)
		rec := waitStatus(t, s, w.Header().Get(headerInvocationID), want.status)
		require.NotNil(t, rec.Error, name)
		assert.Equal(t, want.code, rec.Error.Code, name)
	}
}

func TestAsyncLimit(t *testing.T) {
	t.Parallel()
	s, g := gatedServer(t, func(c *Config) { c.MaxAsync = 1 })
	async := map[string]string{"Prefer": "respond-async"}
	require.Equal(t, http.StatusAccepted, do(s, http.MethodPost, "/function/gated", "", async).Code)
	w := do(s, http.MethodPost, "/function/echo", "", async)
	require.Equal(t, http.StatusTooManyRequests, w.Code)
	assert.Equal(t, "1", w.Header().Get("Retry-After"))
	close(g.out)
}

func record(t testing.TB, s *Server, id string) Invocation {
	t.Helper()
	rec, err := s.store.Get(t.Context(), id)
	require.NoError(t, err)
	return rec
}

// waitStatus waits, bounded, for the record of id to reach status.
func waitStatus(t testing.TB, s *Server, id string, status Status) Invocation {
	t.Helper()
	var rec Invocation
	require.Eventually(t, func() bool {
		rec = record(t, s, id)
		return rec.Status.Final()
	}, wait, time.Millisecond)
	require.Equal(t, status, rec.Status)
	return rec
}

// serve runs s.Serve on a loopback port; it returns the base URL and Serve's result.
func serve(t testing.TB, s *Server, ctx context.Context) (string, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	return "http://" + ln.Addr().String(), done
}

func TestServeShutdownWaitsForInFlight(t *testing.T) {
	t.Parallel()
	f := newFake()
	sync, async := newGate(), newGate()
	f.set("sync", sync.fn)
	f.set("async", async.fn)
	s := newServer(t, f, nil)
	ctx, cancel := context.WithCancel(t.Context())
	url, served := serve(t, s, ctx)

	type answer struct {
		status int
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := http.Post(url+"/function/sync", "text/plain", nil)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		answered <- answer{status: resp.StatusCode, err: resp.Body.Close()}
	}()
	recv(t, sync.started, "sync invocation")
	req, err := http.NewRequest(http.MethodPost, url+"/function/async", nil)
	require.NoError(t, err)
	req.Header.Set("Prefer", "respond-async")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	recv(t, async.started, "async invocation")

	cancel()
	require.Eventually(t, func() bool { return do(s, "GET", "/readyz", "", nil).Code == 503 }, wait, time.Millisecond)
	select {
	case err := <-served:
		t.Fatalf("Serve returned with requests in flight: %v", err)
	default:
	}
	close(sync.out)
	a := recv(t, answered, "in-flight response")
	require.NoError(t, a.err)
	assert.Equal(t, http.StatusNoContent, a.status)
	select {
	case err := <-served:
		t.Fatalf("Serve returned with an async invocation running: %v", err)
	default:
	}
	close(async.out)
	require.NoError(t, recv(t, served, "Serve to return"))
}

func TestShutdownBoundCancelsAsync(t *testing.T) {
	t.Parallel()
	s, g := gatedServer(t, nil)
	w := do(s, http.MethodPost, "/function/gated", "", map[string]string{"Prefer": "respond-async"})
	require.Equal(t, http.StatusAccepted, w.Code)
	recv(t, g.started, "start")

	ctx, cancel := context.WithCancel(t.Context())
	cancel() // the bound has already passed
	err := s.Shutdown(ctx)
	require.ErrorContains(t, err, "cancelled 1 async invocations")
	assert.ErrorIs(t, recv(t, g.ended, "invocation end"), context.Canceled)
	rec := record(t, s, w.Header().Get(headerInvocationID))
	assert.Equal(t, StatusFailed, rec.Status)
	assert.Equal(t, codeCanceled, rec.Error.Code)
	// No new async work after shutdown.
	w = do(s, http.MethodPost, "/function/echo", "", map[string]string{"Prefer": "respond-async"})
	assert.Equal(t, http.StatusServiceUnavailable, w.Code)
}
