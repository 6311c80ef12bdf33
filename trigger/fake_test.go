package trigger

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode) // gin's mode is global; tests are a main
	os.Exit(m.Run())
}

// wait bounds every wait in the tests.
const wait = 5 * time.Second

type fakeFunc func(ctx context.Context, req *Request, emit func(Output) error) (Result, error)

// fakeInvoker is a hand-written Invoker: functions are plain Go funcs keyed by
// tenant/namespace/name. Like a real invoker it recovers a function's panic into a Result,
// except for functions named "crash", whose panic escapes (to test the HTTP recovery).
type fakeInvoker struct {
	mu    sync.Mutex
	funcs map[string]fakeFunc
	calls []*Request
}

var _ Invoker = (*fakeInvoker)(nil)

func newFake() *fakeInvoker {
	f := &fakeInvoker{funcs: map[string]fakeFunc{}}
	f.set("echo", func(_ context.Context, req *Request, emit func(Output) error) (Result, error) {
		return Result{Outputs: 1}, emit(Output{Payload: req.Payload, Key: req.Key, Properties: req.Properties, ContentType: req.ContentType})
	})
	f.set("none", func(context.Context, *Request, func(Output) error) (Result, error) { return Result{}, nil })
	// multi emits each comma-separated part of the payload.
	f.set("multi", func(_ context.Context, req *Request, emit func(Output) error) (Result, error) {
		parts := strings.Split(string(req.Payload), ",")
		for _, p := range parts {
			if err := emit(Output{Payload: []byte(p), Key: "k-" + p}); err != nil {
				return Result{}, err
			}
		}
		return Result{Outputs: len(parts)}, nil
	})
	f.set("fail", func(context.Context, *Request, func(Output) error) (Result, error) {
		return Result{Err: &FunctionError{Kind: KindUser, Message: "boom: bad input"}}, nil
	})
	f.set("panic", func(context.Context, *Request, func(Output) error) (Result, error) { panic("kaboom") })
	f.set("crash", func(context.Context, *Request, func(Output) error) (Result, error) { panic("handler bug") })
	f.set("unavailable", func(context.Context, *Request, func(Output) error) (Result, error) {
		return Result{}, fmt.Errorf("plugin restarting: %w", ErrUnavailable)
	})
	f.set("overloaded", func(context.Context, *Request, func(Output) error) (Result, error) {
		return Result{}, fmt.Errorf("parallelism 1 busy: %w", ErrOverloaded)
	})
	f.set("broken", func(context.Context, *Request, func(Output) error) (Result, error) {
		return Result{}, errors.New("invoker bug")
	})
	// slow honours ctx: it finishes only when ctx ends, and reports a deadline as a function would.
	f.set("slow", func(ctx context.Context, _ *Request, _ func(Output) error) (Result, error) {
		<-ctx.Done()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return Result{Err: &FunctionError{Kind: KindDeadline, Message: "deadline passed"}}, nil
		}
		return Result{}, ctx.Err()
	})
	return f
}

func (f *fakeInvoker) set(name string, fn fakeFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !strings.Contains(name, "/") {
		name = "public/default/" + name
	}
	f.funcs[name] = fn
}

func (f *fakeInvoker) Invoke(ctx context.Context, fn Function, req *Request, emit func(Output) error) (res Result, err error) {
	f.mu.Lock()
	h, ok := f.funcs[fn.String()]
	f.calls = append(f.calls, req)
	f.mu.Unlock()
	if !ok {
		return Result{}, fmt.Errorf("%s: %w", fn, ErrFunctionNotFound)
	}
	if fn.Name != "crash" {
		defer func() {
			if r := recover(); r != nil {
				res, err = Result{Err: &FunctionError{Kind: KindPanic, Message: fmt.Sprint(r)}}, nil
			}
		}()
	}
	// As Invoker requires, req.Deadline bounds the invocation whatever ctx carries.
	ctx, cancel := context.WithDeadline(ctx, req.Deadline)
	defer cancel()
	return h(ctx, req, emit)
}

func (f *fakeInvoker) Functions(context.Context) ([]FunctionInfo, error) {
	return []FunctionInfo{
		{Function: Function{"public", "default", "echo"}, Inputs: []string{"persistent://public/default/echo-in"}, Runtime: "embedded", Timeout: 30 * time.Second},
		{Function: Function{"acme", "prod", "enrich"}, Parallelism: 2, Runtime: "embedded"},
	}, nil
}

// lastCall returns the last Request the fake received.
func (f *fakeInvoker) lastCall(t testing.TB) *Request {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	require.NotEmpty(t, f.calls)
	return f.calls[len(f.calls)-1]
}

// gate is a function whose timing the test controls: it emits what is sent on out, one per
// receive, and finishes when out is closed. started is closed when it begins; ended receives
// the ctx error it ended with (nil when out was closed).
type gate struct {
	out     chan string
	started chan struct{}
	ended   chan error
}

func newGate() *gate {
	return &gate{out: make(chan string), started: make(chan struct{}), ended: make(chan error, 1)}
}

// gatedServer is a Server over a fake invoker whose function "gated" runs the returned gate;
// opt, if not nil, adjusts the Config as newServer's does.
func gatedServer(t *testing.T, opt func(*Config)) (*Server, *gate) {
	t.Helper()
	f := newFake()
	g := newGate()
	f.set("gated", g.fn)
	return newServer(t, f, opt), g
}

func (g *gate) fn(ctx context.Context, _ *Request, emit func(Output) error) (Result, error) {
	close(g.started)
	n := 0
	for {
		select {
		case p, ok := <-g.out:
			if !ok {
				g.ended <- nil
				return Result{Outputs: n}, nil
			}
			if err := emit(Output{Payload: []byte(p)}); err != nil {
				g.ended <- err
				return Result{Outputs: n}, err
			}
			n++
		case <-ctx.Done():
			g.ended <- ctx.Err()
			return Result{Outputs: n}, ctx.Err()
		}
	}
}

// send hands the gate one output to emit, bounded.
func (g *gate) send(t testing.TB, p string) {
	t.Helper()
	select {
	case g.out <- p:
	case <-time.After(wait):
		t.Fatalf("gate: output %q not taken", p)
	}
}

func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// newServer returns a Server over inv; its async invocations are shut down at cleanup.
func newServer(t testing.TB, inv Invoker, mutate func(*Config)) *Server {
	t.Helper()
	cfg := Config{Invoker: inv}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		require.NoError(t, s.Shutdown(ctx))
	})
	return s
}

// do serves one request in process.
func do(s *Server, method, path, body string, headers map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	return w
}

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	id, event, data string
	hasID           bool
}

// readEvent parses the next event from r (per the SSE spec: data lines joined with \n,
// comments skipped). io.EOF at the end of the stream.
func readEvent(r *bufio.Reader) (sseEvent, error) {
	var ev sseEvent
	var data []string
	seen := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return ev, err
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if !seen {
				continue
			}
			ev.data = strings.Join(data, "\n")
			return ev, nil
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		seen = true
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.id, ev.hasID = value, true
		case "event":
			ev.event = value
		case "data":
			data = append(data, value)
		}
	}
}

func readEvents(t testing.TB, body []byte) []sseEvent {
	t.Helper()
	r := bufio.NewReader(bytes.NewReader(body))
	var evs []sseEvent
	for {
		ev, err := readEvent(r)
		if errors.Is(err, io.EOF) {
			return evs
		}
		require.NoError(t, err)
		evs = append(evs, ev)
	}
}

// errorOf decodes a JSON error body.
func errorOf(t testing.TB, w *httptest.ResponseRecorder) apiError {
	t.Helper()
	var body struct {
		Error apiError `json:"error"`
	}
	require.Equal(t, "application/json; charset=utf-8", w.Header().Get("Content-Type"), w.Body.String())
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body), w.Body.String())
	return body.Error
}
