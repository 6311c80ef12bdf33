//go:build integration

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/internal/manifest"
	"github.com/fnhost/fnhost/internal/pulsartest"
)

// sse is one Server-Sent Event.
type sse struct{ id, event, data string }

// sseStream is an open event stream.
type sseStream struct {
	resp *http.Response
	r    *bufio.Reader
}

// openSSE sends req with Accept: text/event-stream (and lastEventID when not empty).
func openSSE(t *testing.T, ctx context.Context, method, url, body, lastEventID string, header ...string) *sseStream {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close() }) // a response body: closing it only releases the connection
	return &sseStream{resp: resp, r: bufio.NewReader(resp.Body)}
}

// next reads the next event (comments skipped); io.EOF at the end of the stream.
func (s *sseStream) next() (sse, error) {
	var ev sse
	var data []string
	seen := false
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return ev, err
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if seen {
				ev.data = strings.Join(data, "\n")
				return ev, nil
			}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			ev.id, seen = line[4:], true
		case strings.HasPrefix(line, "event: "):
			ev.event, seen = line[7:], true
		case strings.HasPrefix(line, "data: "):
			data, seen = append(data, line[6:]), true
		}
	}
}

// take reads the next k events.
func (s *sseStream) take(t *testing.T, k int) []sse {
	t.Helper()
	var evs []sse
	for range k {
		ev, err := s.next()
		require.NoError(t, err)
		evs = append(evs, ev)
	}
	return evs
}

// rest reads events until the stream's end event (done or error), which it returns last.
func (s *sseStream) rest(t *testing.T) []sse {
	t.Helper()
	var evs []sse
	for {
		ev, err := s.next()
		require.NoError(t, err, "the stream ended without done or error; got %v", evs)
		evs = append(evs, ev)
		if ev.event == "done" || ev.event == "error" {
			return evs
		}
	}
}

// chunkEvents are the output events with seqs from to to-1 of the stream function for input n.
func chunkEvents(from, to, n int) []sse {
	var evs []sse
	for i := from; i < to; i++ {
		evs = append(evs, sse{id: strconv.Itoa(i), event: "output", data: fmt.Sprintf("chunk %d/%d", i+1, n)})
	}
	return evs
}

// TestSSEDropAndResumeThroughPulsar: the stream function through the Pulsar invoker and the
// host runtime; a caller drops the event stream after k events and resumes with
// GET /v1/invocations/{id}/events and Last-Event-ID: k-1.
//
// What is supported, and tested here:
//   - an async invocation (Prefer: respond-async) runs whatever its followers do: a follower
//     that drops and resumes gets exactly the missed events, then done, from the instance that
//     ran it (its replay buffer) and, once the invocation has ended, from any instance on the
//     same Pulsar store (the record holds the outputs);
//   - a streamed invocation (Accept: text/event-stream on invoke) is tied to its caller: a drop
//     cancels it. Resuming on the same instance replays what it emitted before it ended, with
//     no gap and no repeat, then its end: done when it finished before the drop was noticed,
//     else an error event (canceled). Its replay buffer is per instance: another instance
//     answers 404.
func TestSSEDropAndResumeThroughPulsar(t *testing.T) {
	t.Parallel()
	pulsartest.Require(t)
	gin.SetMode(gin.ReleaseMode)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	stream := exampleManifest(t, "stream", "stream-"+pulsartest.Name(t), pulsartest.Topic(t), pulsartest.Topic(t), "")
	fns := []*manifest.Function{stream}
	runPulsarHost(t, fns, true)
	storeTopic := pulsartest.Topic(t)
	urlA, _ := serveTriggerWithStore(t, fns, storeTopic)
	urlB, _ := serveTriggerWithStore(t, fns, storeTopic)
	const n, k = 50, 7

	t.Run("async", func(t *testing.T) {
		resp, body := post(t, urlA+"/function/"+stream.Name, strconv.Itoa(n), "Prefer", "respond-async", "Accept", "text/event-stream")
		require.Equal(t, http.StatusAccepted, resp.StatusCode, body)
		id := resp.Header.Get("X-Invocation-Id")
		events := urlA + "/v1/invocations/" + id + "/events"

		// Follow, and drop after k events.
		dctx, drop := context.WithCancel(ctx)
		s := openSSE(t, dctx, http.MethodGet, events, "", "")
		require.Equal(t, http.StatusOK, s.resp.StatusCode)
		first := s.take(t, k)
		drop()
		assert.Equal(t, chunkEvents(0, k, n), first)

		// Resume on the same instance: exactly the missed events, then done.
		r := openSSE(t, ctx, http.MethodGet, events, "", strconv.Itoa(k-1))
		require.Equal(t, http.StatusOK, r.resp.StatusCode)
		got := r.rest(t)
		require.NotEmpty(t, got)
		assert.Equal(t, chunkEvents(k, n, n), got[:len(got)-1])
		assert.Equal(t, "done", got[len(got)-1].event)
		assert.Contains(t, got[len(got)-1].data, fmt.Sprintf(`"outputs":%d`, n))

		// Resume on the other instance once the record there is final.
		require.Eventually(t, func() bool {
			code, rec := getRecord(t, urlB, id)
			return code == http.StatusOK && rec.Status.Final()
		}, time.Minute, 50*time.Millisecond, "instance B sees the final record")
		rb := openSSE(t, ctx, http.MethodGet, urlB+"/v1/invocations/"+id+"/events", "", strconv.Itoa(k-1))
		require.Equal(t, http.StatusOK, rb.resp.StatusCode)
		gotB := rb.rest(t)
		assert.Equal(t, got, gotB, "instance B replays the same events from the record")
	})

	t.Run("streamed", func(t *testing.T) {
		dctx, drop := context.WithCancel(ctx)
		s := openSSE(t, dctx, http.MethodPost, urlA+"/function/"+stream.Name, strconv.Itoa(n), "")
		require.Equal(t, http.StatusOK, s.resp.StatusCode)
		id := s.resp.Header.Get("X-Invocation-Id")
		require.NotEmpty(t, id)
		first := s.take(t, k)
		drop()
		assert.Equal(t, chunkEvents(0, k, n), first)

		r := openSSE(t, ctx, http.MethodGet, urlA+"/v1/invocations/"+id+"/events", "", strconv.Itoa(k-1))
		require.Equal(t, http.StatusOK, r.resp.StatusCode)
		got := r.rest(t)
		end, outs := got[len(got)-1], got[:len(got)-1]
		// The drop did not cancel the invocation: the resume gets exactly what was missed.
		assert.Equal(t, chunkEvents(k, n, n), outs, "exactly the missed events")
		assert.Equal(t, "done", end.event)

		// Another instance has no replay buffer of it, and no record: 404.
		rb := openSSE(t, ctx, http.MethodGet, urlB+"/v1/invocations/"+id+"/events", "", strconv.Itoa(k-1))
		b, err := io.ReadAll(rb.resp.Body)
		require.NoError(t, err)
		assert.Equal(t, http.StatusNotFound, rb.resp.StatusCode, string(b))
	})
}
