package trigger

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSSEFraming(t *testing.T) {
	t.Parallel()
	f := newFake()
	payloads := [][]byte{[]byte("line1\nline2\n\nline4"), []byte(""), []byte("trailing\n"), {0xff, 0xfe}, []byte("cr\r\nlf")}
	f.set("mixed", func(_ context.Context, _ *Request, emit func(Output) error) (Result, error) {
		for _, p := range payloads {
			if err := emit(Output{Payload: p}); err != nil {
				return Result{}, err
			}
		}
		return Result{Outputs: len(payloads)}, nil
	})
	s := newServer(t, f, nil)
	w := do(s, http.MethodPost, "/function/mixed", "", map[string]string{"Accept": "text/event-stream"})
	require.Equal(t, 200, w.Code)
	assert.Equal(t, "text/event-stream; charset=utf-8", w.Header().Get("Content-Type"))
	id := w.Header().Get(headerInvocationID)
	// The exact wire form of the first event: multi-line payloads become several data lines.
	assert.True(t, strings.HasPrefix(w.Body.String(),
		"id: 0\nevent: output\ndata: line1\ndata: line2\ndata: \ndata: line4\n\nid: 1\nevent: output\ndata: \n\n"), w.Body.String())
	evs := readEvents(t, w.Body.Bytes())
	require.Len(t, evs, 6)
	assert.Equal(t, sseEvent{id: "0", hasID: true, event: "output", data: "line1\nline2\n\nline4"}, evs[0])
	assert.Equal(t, sseEvent{id: "1", hasID: true, event: "output", data: ""}, evs[1])
	assert.Equal(t, sseEvent{id: "2", hasID: true, event: "output", data: "trailing\n"}, evs[2])
	assert.Equal(t, sseEvent{id: "3", hasID: true, event: "output-base64", data: "//4="}, evs[3])
	assert.Equal(t, sseEvent{id: "4", hasID: true, event: "output-base64", data: "Y3INCmxm"}, evs[4])
	assert.Equal(t, sseEvent{event: "done", data: `{"invocation_id":"` + id + `","outputs":5}`}, evs[5])
}

func TestSSEFailures(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.set("halfway", func(_ context.Context, _ *Request, emit func(Output) error) (Result, error) {
		if err := emit(Output{Payload: []byte("part")}); err != nil {
			return Result{}, err
		}
		return Result{Err: &FunctionError{Kind: KindUser, Message: "lost the rest"}}, nil
	})
	s := newServer(t, f, nil)
	sse := map[string]string{"Accept": "text/event-stream"}

	// A failure after the first output ends the stream with an error event.
	w := do(s, http.MethodPost, "/function/halfway", "", sse)
	require.Equal(t, 200, w.Code)
	evs := readEvents(t, w.Body.Bytes())
	require.Len(t, evs, 2)
	assert.Equal(t, "error", evs[1].event)
	var e apiError
	require.NoError(t, json.Unmarshal([]byte(evs[1].data), &e))
	assert.Equal(t, apiError{Code: codeFunctionError, Message: "lost the rest", InvocationID: w.Header().Get(headerInvocationID)}, e)

	// A failure before any output keeps its status.
	w = do(s, http.MethodPost, "/function/fail", "", sse)
	assert.Equal(t, 502, w.Code)
	assert.Equal(t, codeFunctionError, errorOf(t, w).Code)
	w = do(s, http.MethodPost, "/function/nope", "", sse)
	assert.Equal(t, 404, w.Code)

	// No output: just done.
	w = do(s, http.MethodPost, "/function/none", "", sse)
	require.Equal(t, 200, w.Code)
	evs = readEvents(t, w.Body.Bytes())
	require.Len(t, evs, 1)
	assert.Equal(t, "done", evs[0].event)
}

func TestNDJSON(t *testing.T) {
	t.Parallel()
	s := newServer(t, newFake(), nil)
	w := do(s, http.MethodPost, "/function/multi", "a,b,c", map[string]string{"Accept": "application/x-ndjson"})
	require.Equal(t, 200, w.Code)
	assert.Equal(t, "application/x-ndjson", w.Header().Get("Content-Type"))
	id := w.Header().Get(headerInvocationID)
	assert.Equal(t, `{"seq":0,"payload":"a","key":"k-a"}
{"seq":1,"payload":"b","key":"k-b"}
{"seq":2,"payload":"c","key":"k-c"}
{"done":true,"invocation_id":"`+id+`","outputs":3}
`, w.Body.String())

	w = do(s, http.MethodPost, "/function/slow", "", map[string]string{"Accept": "application/x-ndjson", "X-Timeout": "10ms"})
	assert.Equal(t, 504, w.Code)
}

func TestNegotiate(t *testing.T) {
	t.Parallel()
	for accept, want := range map[string]mode{
		"":                     modeSync,
		"*/*":                  modeSync,
		"application/json":     modeSync,
		"text/event-stream":    modeSSE,
		"application/x-ndjson": modeNDJSON,
		"application/x-ndjson, text/event-stream;q=0.5": modeNDJSON,
		"text/event-stream, application/x-ndjson":       modeSSE,
		"text/event-stream;q=0":                         modeSync,
	} {
		assert.Equal(t, want, negotiate(accept), accept)
	}
}

func TestResumeReplaysExactlyTheMissedEvents(t *testing.T) {
	t.Parallel()
	s := newServer(t, newFake(), nil)
	w := do(s, http.MethodPost, "/function/multi", "a,b,c,d,e", map[string]string{"Accept": "text/event-stream"})
	require.Equal(t, 200, w.Code)
	id := w.Header().Get(headerInvocationID)

	tests := []struct {
		lastEventID string
		want        []string // ids of output events
	}{
		{"", []string{"0", "1", "2", "3", "4"}},
		{"0", []string{"1", "2", "3", "4"}},
		{"2", []string{"3", "4"}},
		{"4", nil},
		{"9", nil},
	}
	for _, tc := range tests {
		t.Run("after "+tc.lastEventID, func(t *testing.T) {
			t.Parallel()
			w := do(s, http.MethodGet, "/v1/invocations/"+id+"/events", "", map[string]string{"Last-Event-ID": tc.lastEventID})
			require.Equal(t, 200, w.Code, w.Body.String())
			evs := readEvents(t, w.Body.Bytes())
			var ids []string
			for _, ev := range evs[:len(evs)-1] {
				assert.Equal(t, "output", ev.event)
				ids = append(ids, ev.id)
			}
			assert.Equal(t, tc.want, ids)
			assert.Equal(t, "done", evs[len(evs)-1].event)
		})
	}
}

func TestResumeOutsideTheWindow(t *testing.T) {
	t.Parallel()
	s := newServer(t, newFake(), func(c *Config) { c.ReplayEvents = 2 })
	w := do(s, http.MethodPost, "/function/multi", "a,b,c,d", map[string]string{"Accept": "text/event-stream"})
	id := w.Header().Get(headerInvocationID)
	w = do(s, http.MethodGet, "/v1/invocations/"+id+"/events", "", map[string]string{"Last-Event-ID": "0"})
	require.Equal(t, http.StatusGone, w.Code)
	assert.Equal(t, codeReplayExpired, errorOf(t, w).Code)
	w = do(s, http.MethodGet, "/v1/invocations/"+id+"/events", "", map[string]string{"Last-Event-ID": "1"})
	require.Equal(t, 200, w.Code)
	assert.Len(t, readEvents(t, w.Body.Bytes()), 3) // outputs 2 and 3, done
}

// TestResumeFollowsLive: a resumed stream of a running (async) invocation replays what was
// missed, then continues live until the end.
func TestResumeFollowsLive(t *testing.T) {
	t.Parallel()
	s, g := gatedServer(t, nil)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)

	w := do(s, http.MethodPost, "/function/gated", "", map[string]string{"Prefer": "respond-async"})
	require.Equal(t, http.StatusAccepted, w.Code)
	id := w.Header().Get(headerInvocationID)
	g.send(t, "zero")
	g.send(t, "one")

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/v1/invocations/"+id+"/events", nil)
	require.NoError(t, err)
	req.Header.Set("Last-Event-ID", "0")
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	r := bufio.NewReader(resp.Body)
	// "one" may or may not have been journaled when we connected; either way it comes next.
	ev, err := readEvent(r)
	require.NoError(t, err)
	assert.Equal(t, sseEvent{id: "1", hasID: true, event: "output", data: "one"}, ev)

	g.send(t, "two")
	ev, err = readEvent(r)
	require.NoError(t, err)
	assert.Equal(t, sseEvent{id: "2", hasID: true, event: "output", data: "two"}, ev)
	close(g.out)
	ev, err = readEvent(r)
	require.NoError(t, err)
	assert.Equal(t, "done", ev.event)
}

// TestDisconnectDetaches: a streaming caller that goes away does not cancel the invocation;
// it runs on, and a resume gets exactly what the caller missed.
func TestDisconnectDetaches(t *testing.T) { // not parallel: it counts goroutines
	s, g := gatedServer(t, nil)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	baseline := runtime.NumGoroutine()

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/function/gated", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/event-stream")
	type answer struct {
		resp *http.Response
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := client.Do(req)
		answered <- answer{resp, err}
	}()
	recv(t, g.started, "invocation start")
	g.send(t, "first")
	a := recv(t, answered, "response headers")
	require.NoError(t, a.err)
	ev, err := readEvent(bufio.NewReader(a.resp.Body))
	require.NoError(t, err)
	assert.Equal(t, "first", ev.data)
	id := a.resp.Header.Get(headerInvocationID)

	cancel() // the caller goes away
	require.NoError(t, a.resp.Body.Close())
	g.send(t, "second") // the invocation runs on
	g.send(t, "third")
	close(g.out)
	assert.NoError(t, recv(t, g.ended, "invocation end"))

	w := do(s, http.MethodGet, "/v1/invocations/"+id+"/events", "", map[string]string{"Last-Event-ID": "0"})
	require.Equal(t, http.StatusOK, w.Code)
	evs := readEvents(t, w.Body.Bytes())
	require.Len(t, evs, 3)
	assert.Equal(t, sseEvent{id: "1", hasID: true, event: "output", data: "second"}, evs[0])
	assert.Equal(t, sseEvent{id: "2", hasID: true, event: "output", data: "third"}, evs[1])
	assert.Equal(t, "done", evs[2].event)

	client.CloseIdleConnections()
	waitGoroutines(t, baseline)
}

// leftStream starts a streamed invocation of a gated function over HTTP whose caller leaves
// at once, and returns the server and the gate once the invocation runs.
func leftStream(t *testing.T) (*Server, *gate) {
	t.Helper()
	s, g := gatedServer(t, nil)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/function/gated", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/event-stream")
	go func() {
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close() // the caller leaves at once; nothing to check
		}
	}()
	recv(t, g.started, "invocation start")
	cancel()
	return s, g
}

// TestShutdownCancelsDetachedStreams: past the shutdown bound, a stream whose caller left is
// cancelled rather than left running.
func TestShutdownCancelsDetachedStreams(t *testing.T) {
	t.Parallel()
	s, g := leftStream(t)
	sctx, scancel := context.WithCancel(t.Context())
	scancel()            // the bound has passed already
	_ = s.Shutdown(sctx) // no async invocations: its error only says the bound passed
	assert.ErrorIs(t, recv(t, g.ended, "invocation end"), context.Canceled)
}

// waitGoroutines waits, bounded, until no more than n goroutines run. (require.Eventually
// runs its condition on a goroutine of its own, which would be counted.)
func waitGoroutines(t testing.TB, n int) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(wait)
	for runtime.NumGoroutine() > n {
		select {
		case <-tick.C:
		case <-deadline:
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
	}
}

// TestShutdownWaitsForDetachedStreams: within the shutdown bound, a stream whose caller left
// runs to its end; Shutdown returns once it has.
func TestShutdownWaitsForDetachedStreams(t *testing.T) {
	t.Parallel()
	s, g := leftStream(t)
	shut := make(chan error, 1)
	go func() {
		sctx, scancel := context.WithTimeout(context.Background(), wait)
		defer scancel()
		shut <- s.Shutdown(sctx)
	}()
	g.send(t, "after the caller left")
	close(g.out)
	assert.NoError(t, recv(t, g.ended, "invocation end"), "not cancelled")
	assert.NoError(t, recv(t, shut, "shutdown"))
}
