package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/functions/pf/plugin"
	"github.com/fnhost/fnhost/internal/engine"
	"github.com/fnhost/fnhost/internal/manifest"
)

// repoRoot is the repository root, from this package's directory.
var repoRoot = filepath.Join("..", "..")

// buildDir is shared by the tests of this package so that each example is built once.
var buildDir = sync.OnceValue(func() string {
	dir, err := os.MkdirTemp("", "fnhost-host-")
	if err != nil {
		panic(err)
	}
	return dir
})

func TestMain(m *testing.M) {
	code := m.Run()
	if err := os.RemoveAll(buildDir()); err != nil {
		fmt.Fprintln(os.Stderr, "removing the test binaries:", err)
	}
	os.Exit(code)
}

// fnManifest returns a manifest for the example function fn under name, with yaml appended
// to a base of name, source and inputs.
func fnManifest(t testing.TB, fn, name, inputs, extra string) *manifest.Function {
	t.Helper()
	src, err := filepath.Abs(filepath.Join(repoRoot, "functions", fn))
	require.NoError(t, err)
	body := fmt.Sprintf("name: %s\ngo: %s\ninputs: [%s]\n%s", name, src, inputs, extra)
	f, err := manifest.Parse(filepath.Join(t.TempDir(), name+".yaml"), []byte(body))
	require.NoError(t, err)
	return f
}

func newHost(t testing.TB, cfg Config) *Host {
	t.Helper()
	if cfg.BuildDir == "" {
		cfg.BuildDir = filepath.Join(buildDir(), t.Name())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	h, err := New(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		assert.NoError(t, h.Close(ctx))
	})
	return h
}

func collect(ctx context.Context, h *Host, fqfn, payload string) ([]string, plugin.Result, error) {
	var outs []string
	res, err := h.Invoke(ctx, fqfn, &plugin.Request{Payload: []byte(payload)}, func(e plugin.Event) error {
		if e.Kind == plugin.EventOutput {
			outs = append(outs, string(e.Output.Payload))
		}
		return nil
	})
	return outs, res, err
}

func TestEmbeddedInvoke(t *testing.T) {
	t.Parallel()
	var progress []string
	var mu sync.Mutex
	h := newHost(t, Config{
		Functions: []*manifest.Function{
			fnManifest(t, "upper", "upper", "up-in", "output: up-out\n"),
			fnManifest(t, "stream", "stream", "st-in", ""),
			fnManifest(t, "flaky", "flaky", "fl-in", "parallelism: 2\n"),
			// fed by upper's output topic
			fnManifest(t, "echo", "echo", "up-out", ""),
		},
		Progress: func(s string) { mu.Lock(); progress = append(progress, s); mu.Unlock() },
	})
	assert.True(t, h.Embedded())
	assert.True(t, h.Ready())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	outs, res, err := collect(ctx, h, "public/default/upper", "hi")
	require.NoError(t, err)
	require.NoError(t, res.Err())
	assert.Equal(t, []string{"HI"}, outs)

	outs, _, err = collect(ctx, h, "public/default/stream", "3")
	require.NoError(t, err)
	assert.Equal(t, []string{"chunk 1/3", "chunk 2/3", "chunk 3/3"}, outs)

	_, res, err = collect(ctx, h, "public/default/flaky", "please fail")
	require.NoError(t, err, "a function error is a result, not an invocation error")
	assert.Equal(t, plugin.KindUser, res.Kind)
	assert.Contains(t, res.Error, "marker")

	_, _, err = collect(ctx, h, "public/default/nope", "x")
	assert.ErrorIs(t, err, ErrFunctionNotFound)

	// upper's output fed echo in process.
	require.Eventually(t, func() bool {
		return snapshot(t, h, "public/default/echo", 0).Total.Processed == 1
	}, 30*time.Second, 10*time.Millisecond, "echo is fed upper's output")

	metrics, err := testutil.GatherAndCount(h.Registry(), "pulsar_function_received_total")
	require.NoError(t, err)
	assert.Positive(t, metrics)
	assert.Equal(t, int64(1), snapshot(t, h, "public/default/flaky", 0).Total.UserExceptions+
		snapshot(t, h, "public/default/flaky", 1).Total.UserExceptions)

	st := h.Status()
	require.Len(t, st, 4)
	assert.Len(t, st[2].Pool.Slots, 2)
	mu.Lock()
	assert.Contains(t, strings.Join(progress, "\n"), "building public/default/upper")
	mu.Unlock()
}

func TestEmbeddedTimeout(t *testing.T) {
	t.Parallel()
	// The pool tests' function sleeps on "sleep:<d>"; here the example echo cannot be slow, so
	// use an already-passed deadline: the function must not run.
	h := newHost(t, Config{Functions: []*manifest.Function{fnManifest(t, "echo", "echo", "in", "timeoutMs: 1000\n")}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := h.Invoke(ctx, "public/default/echo", &plugin.Request{Payload: []byte("x"), Deadline: time.Now().Add(-time.Second)}, func(plugin.Event) error { return nil })
	require.NoError(t, err)
	assert.Equal(t, plugin.KindDeadline, res.Kind)
}

func TestEmbeddedTimeoutBoundsCallerDeadline(t *testing.T) {
	t.Parallel()
	// The pool tests' function waits on "sleep:<d>" until its context ends.
	src, err := filepath.Abs(filepath.Join(repoRoot, "runtime", "pool", "testdata", "testfn"))
	require.NoError(t, err)
	m, err := manifest.Parse(filepath.Join(t.TempDir(), "slow.yaml"), []byte("name: slow\ngo: "+src+"\ninputs: [in]\ntimeoutMs: 200\n"))
	require.NoError(t, err)
	h := newHost(t, Config{Functions: []*manifest.Function{m}})
	// Only against a hang, with a cause of its own: the function's timeout must end the call.
	ctx, cancel := context.WithTimeoutCause(context.Background(), time.Minute, errors.New("the function's timeout did not bound the call"))
	defer cancel()
	// The caller allows an hour; the function's own 200 ms still end the call.
	res, err := h.Invoke(ctx, "public/default/slow", &plugin.Request{Payload: []byte("sleep:1h"), Deadline: time.Now().Add(time.Hour)}, func(plugin.Event) error { return nil })
	require.NoError(t, err)
	assert.Equal(t, plugin.KindDeadline, res.Kind)
}

func TestRebuildReloads(t *testing.T) {
	t.Parallel()
	// A private copy of the echo source that the test edits. It must sit inside the module to
	// build, so it goes under testdata (which go ./... ignores).
	src, err := os.ReadFile(filepath.Join(repoRoot, "functions", "echo", "main.go"))
	require.NoError(t, err)
	dir, err := os.MkdirTemp("testdata", "mutable-")
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, os.RemoveAll(dir), "a copy left in the source tree") })
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), src, 0o644))
	abs, err := filepath.Abs(dir)
	require.NoError(t, err)
	f, err := manifest.Parse(filepath.Join(t.TempDir(), "m.yaml"), []byte("name: mutable\ngo: "+abs+"\ninputs: [in]\n"))
	require.NoError(t, err)
	h := newHost(t, Config{Functions: []*manifest.Function{f}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	outs, _, err := collect(ctx, h, "public/default/mutable", "x")
	require.NoError(t, err)
	assert.Equal(t, []string{"x"}, outs)

	edited := strings.Replace(string(src), "return in, nil", `return append([]byte("v2:"), in...), nil`, 1)
	require.NotEqual(t, string(src), edited)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(edited), 0o644))
	require.NoError(t, h.Rebuild(ctx, "public/default/mutable"))
	outs, _, err = collect(ctx, h, "public/default/mutable", "x")
	require.NoError(t, err)
	assert.Equal(t, []string{"v2:x"}, outs)

	// A compile error keeps the running version.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\nfunc main() { broken( }\n"), 0o644))
	err = h.Rebuild(ctx, "public/default/mutable")
	require.Error(t, err)
	outs, _, err2 := collect(ctx, h, "public/default/mutable", "still")
	require.NoError(t, err2)
	assert.Equal(t, []string{"v2:still"}, outs)
	assert.NotEmpty(t, h.Status()[0].LastError)
}

func TestEffectivelyOnceNeedsAdminURL(t *testing.T) {
	t.Parallel()
	_, err := New(context.Background(), Config{
		BuildDir:  t.TempDir(),
		PulsarURL: "pulsar://127.0.0.1:6650",
		Functions: []*manifest.Function{fnManifest(t, "echo", "echo", "in", "processingGuarantees: EFFECTIVELY_ONCE\n")},
	})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "EFFECTIVELY_ONCE needs the Pulsar admin URL")
}

// snapshot is what instance i of fqfn counted.
func snapshot(t testing.TB, h *Host, fqfn string, i int) engine.Snapshot {
	t.Helper()
	f, err := h.lookup(fqfn)
	require.NoError(t, err)
	return f.metrics.Instance(i).Snapshot(false)
}
