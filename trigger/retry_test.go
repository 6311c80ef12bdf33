package trigger

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// retried is a function whose first attempt streams two outputs and fails, and whose retry
// (attempt 1) streams three, as an invoker reports a function retried by Pulsar.
func retried(_ context.Context, _ *Request, emit func(Output) error) (Result, error) {
	for _, o := range []Output{{Payload: []byte("a0")}, {Payload: []byte("b0")},
		{Payload: []byte("a1"), Attempt: 1}, {Payload: []byte("b1"), Attempt: 1}, {Payload: []byte("c1"), Attempt: 1}} {
		if err := emit(o); err != nil {
			return Result{}, err
		}
	}
	return Result{Outputs: 5, Attempt: 1}, nil
}

func TestRetriedFunctionSync(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.set("retried", retried)
	s := newServer(t, f, nil)
	w := do(s, http.MethodPost, "/function/retried", "", nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	var outs []Output
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &outs))
	assert.Equal(t, []Output{{Payload: []byte("a1"), Attempt: 1}, {Payload: []byte("b1"), Seq: 1, Attempt: 1},
		{Payload: []byte("c1"), Seq: 2, Attempt: 1}}, outs, "only the retry's outputs, numbered from 0")
}

func TestRetriedFunctionStreams(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.set("retried", retried)
	s := newServer(t, f, nil)

	w := do(s, http.MethodPost, "/function/retried", "", map[string]string{"Accept": "text/event-stream"})
	require.Equal(t, http.StatusOK, w.Code)
	id := w.Header().Get(headerInvocationID)
	evs := readEvents(t, w.Body.Bytes())
	require.Len(t, evs, 7)
	assert.Equal(t, sseEvent{id: "1", hasID: true, event: "output", data: "b0"}, evs[1])
	assert.Equal(t, sseEvent{event: "restart", data: `{"invocation_id":"` + id + `","attempt":1}`}, evs[2])
	assert.Equal(t, sseEvent{id: "2", hasID: true, event: "output", data: "a1"}, evs[3], "ids keep increasing")
	assert.Equal(t, "done", evs[6].event)

	// A resumed stream marks only the restarts its caller has not seen.
	for after, restart := range map[string]bool{"0": true, "1": true, "2": false, "3": false} {
		w := do(s, http.MethodGet, "/v1/invocations/"+id+"/events", "", map[string]string{"Last-Event-ID": after})
		require.Equal(t, http.StatusOK, w.Code)
		var sawRestart bool
		for _, ev := range readEvents(t, w.Body.Bytes()) {
			sawRestart = sawRestart || ev.event == "restart"
		}
		assert.Equal(t, restart, sawRestart, "after %s", after)
	}

	w = do(s, http.MethodPost, "/function/retried", "", map[string]string{"Accept": mediaNDJSON})
	require.Equal(t, http.StatusOK, w.Code)
	var lines []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(w.Body.Bytes()))
	for sc.Scan() {
		var l map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l), sc.Text())
		lines = append(lines, l)
	}
	require.Len(t, lines, 7)
	assert.Equal(t, true, lines[2]["restart"])
	assert.Equal(t, 1.0, lines[2]["attempt"])
	assert.Equal(t, "a1", lines[3]["payload"])
}

func TestRetriedFunctionAsyncRecord(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.set("retried", retried)
	s := newServer(t, f, nil)
	w := do(s, http.MethodPost, "/function/retried", "", map[string]string{"Prefer": "respond-async"})
	require.Equal(t, http.StatusAccepted, w.Code)
	id := w.Header().Get(headerInvocationID)
	waitStatus(t, s, id, StatusSucceeded)
	rec := record(t, s, id)
	assert.Equal(t, []Output{{Payload: []byte("a1"), Seq: 2, Attempt: 1}, {Payload: []byte("b1"), Seq: 3, Attempt: 1},
		{Payload: []byte("c1"), Seq: 4, Attempt: 1}}, rec.Outputs, "the retry's outputs, numbered as their events")
	assert.Equal(t, 1, rec.Attempt)

	// Another trigger on the same store rebuilds the events from the record: a resume among
	// the failed attempt's events restarts, one after them does not.
	other := newServer(t, f, func(c *Config) { c.Store = s.store })
	for _, tc := range []struct {
		after   string
		restart bool
		ids     []string
	}{
		{"", false, []string{"2", "3", "4"}},
		{"0", true, []string{"2", "3", "4"}},
		{"1", true, []string{"2", "3", "4"}},
		{"2", false, []string{"3", "4"}},
		{"4", false, nil},
	} {
		w := do(other, http.MethodGet, "/v1/invocations/"+id+"/events", "", map[string]string{"Last-Event-ID": tc.after})
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		var ids []string
		var restart bool
		evs := readEvents(t, w.Body.Bytes())
		for _, ev := range evs {
			switch ev.event {
			case "restart":
				restart = true
			case "output":
				ids = append(ids, ev.id)
			}
		}
		assert.Equal(t, tc.restart, restart, "after %q", tc.after)
		assert.Equal(t, tc.ids, ids, "after %q", tc.after)
		assert.Equal(t, "done", evs[len(evs)-1].event)
	}
}

// retriedEmpty is a function whose failed first attempt streamed two outputs and whose retry
// succeeded with none.
func retriedEmpty(_ context.Context, _ *Request, emit func(Output) error) (Result, error) {
	for _, o := range []Output{{Payload: []byte("a0")}, {Payload: []byte("b0")}} {
		if err := emit(o); err != nil {
			return Result{}, err
		}
	}
	return Result{Attempt: 1}, nil
}

func TestRetryWithoutOutputsSupersedes(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.set("retried", retriedEmpty)
	s := newServer(t, f, nil)

	w := do(s, http.MethodPost, "/function/retried", "", nil)
	assert.Equal(t, http.StatusNoContent, w.Code, w.Body.String())

	w = do(s, http.MethodPost, "/function/retried", "", map[string]string{"Accept": "text/event-stream"})
	require.Equal(t, http.StatusOK, w.Code)
	id := w.Header().Get(headerInvocationID)
	evs := readEvents(t, w.Body.Bytes())
	require.Len(t, evs, 4)
	assert.Equal(t, sseEvent{event: "restart", data: `{"invocation_id":"` + id + `","attempt":1}`}, evs[2])
	assert.Equal(t, sseEvent{event: "done", data: `{"invocation_id":"` + id + `","outputs":0}`}, evs[3])

	w = do(s, http.MethodPost, "/function/retried", "", map[string]string{"Prefer": "respond-async"})
	require.Equal(t, http.StatusAccepted, w.Code)
	rec := waitStatus(t, s, w.Header().Get(headerInvocationID), StatusSucceeded)
	assert.Empty(t, rec.Outputs)
	assert.Equal(t, 1, rec.Attempt)
}
