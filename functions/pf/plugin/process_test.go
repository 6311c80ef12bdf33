//go:build unix

package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/functions/pf/plugin"
)

// wait bounds every wait of these tests.
const wait = 20 * time.Second

// binDir holds the function binaries TestMain builds.
var binDir string

// helperEnv makes the test binary a host that starts the fn binary named by its value,
// prints the plugin's pid and waits to be killed (TestOrphanedPluginExits).
const helperEnv = "FNHOST_TEST_HOST_FOR"

func TestMain(m *testing.M) {
	if path := os.Getenv(helperEnv); path != "" {
		os.Exit(runHost(path))
	}
	os.Exit(runTests(m))
}

func runHost(path string) int {
	p, err := plugin.Start(context.Background(), plugin.Config{Path: path, Info: plugin.Info{Name: "orphan"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(p.Pid())
	<-p.Exited()
	return 0
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "fnhost-plugin-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintln(os.Stderr, "removing the test binaries:", err)
		}
	}()
	binDir = dir
	for name, pkg := range map[string]string{
		"echo": "github.com/fnhost/fnhost/functions/echo",
		"fn":   "github.com/fnhost/fnhost/functions/pf/plugin/testdata/fn",
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", pkg, err, out)
			return 1
		}
	}
	return m.Run()
}

// recorder is a slog.Handler that keeps the records, to check what reaches the host's log.
type recorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec.Clone())
	return nil
}

func (r *recorder) find(msg string) (slog.Record, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.records {
		if rec.Message == msg {
			return rec, true
		}
	}
	return slog.Record{}, false
}

func attrs(rec slog.Record) map[string]any {
	m := map[string]any{}
	rec.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.Any()
		return true
	})
	return m
}

// start launches the binary name and kills it at cleanup.
func start(tb testing.TB, name string, cfg plugin.Config) *plugin.Process {
	tb.Helper()
	cfg.Path = filepath.Join(binDir, name)
	if cfg.Info.Name == "" {
		cfg.Info.Name = name
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	p, err := plugin.Start(ctx, cfg)
	require.NoError(tb, err)
	tb.Cleanup(p.Kill)
	return p
}

func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	tb.Cleanup(cancel)
	return ctx
}

func invoke(ctx context.Context, p *plugin.Process, in string) ([]plugin.Event, plugin.Result, error) {
	var evs []plugin.Event
	res, err := p.Invoke(ctx, &plugin.Request{Payload: []byte(in)}, func(e plugin.Event) error {
		evs = append(evs, e)
		return nil
	})
	return evs, res, err
}

func outputs(evs []plugin.Event) []string {
	var out []string
	for _, e := range evs {
		if e.Kind == plugin.EventOutput {
			out = append(out, string(e.Output.Payload))
		}
	}
	return out
}

func requireExited(tb testing.TB, p *plugin.Process) {
	tb.Helper()
	select {
	case <-p.Exited():
	case <-time.After(wait):
		tb.Fatal("the plugin process did not exit")
	}
	// The process is reaped: signalling its pid finds nothing.
	require.ErrorIs(tb, syscall.Kill(p.Pid(), 0), syscall.ESRCH)
}

func TestEchoLifecycle(t *testing.T) {
	t.Parallel()
	p := start(t, "echo", plugin.Config{})
	ctx := testCtx(t)
	require.Positive(t, p.Pid())
	evs, res, err := invoke(ctx, p, "hello")
	require.NoError(t, err)
	require.NoError(t, res.Err())
	assert.Equal(t, []string{"hello"}, outputs(evs))

	h, err := p.Health(ctx)
	require.NoError(t, err)
	assert.Equal(t, plugin.Health{Serving: true, InFlight: 0, MaxInFlight: plugin.DefaultMaxInFlight, Served: 1}, h)

	require.NoError(t, p.Drain(ctx))
	_, _, err = invoke(ctx, p, "late")
	require.ErrorIs(t, err, plugin.ErrDraining)

	var wg sync.WaitGroup
	for range 3 {
		wg.Go(p.Kill) // idempotent and safe for concurrent use
	}
	wg.Wait()
	requireExited(t, p)
	_, _, err = invoke(ctx, p, "after kill")
	require.Error(t, err)
}

func TestFunctionBinary(t *testing.T) {
	t.Parallel()
	logs := &recorder{}
	p := start(t, "fn", plugin.Config{
		Info: plugin.Info{
			Tenant: "acme", Namespace: "ops", Name: "fn", ManualAck: true,
			UserConfig: map[string]any{"greeting": "hi"},
		},
		Logger: slog.New(logs),
	})
	tests := []struct {
		in      string
		want    []string
		events  []plugin.EventKind
		kind    plugin.Kind
		errText string
	}{
		{in: "hello", want: []string{"HELLO"}},
		{in: "stream:5", want: []string{"0", "1", "2", "3", "4", "done"}},
		{in: "stream:0", want: []string{"done"}},
		{in: "error", kind: plugin.KindUser, errText: "bad input"},
		{in: "panic", kind: plugin.KindPanic, errText: "function panicked: boom"},
		{in: "hello again", want: []string{"HELLO AGAIN"}}, // still serving after the panic
		{in: "config", want: []string{`acme/ops/fn {"greeting":"hi"}`}},
		{in: "ack", events: []plugin.EventKind{plugin.EventAck}},
		{in: "metric", events: []plugin.EventKind{plugin.EventMetric}},
		{in: "produce", kind: plugin.KindUser, errText: "NewOutputMessage needs a Pulsar URL; the host runs embedded"},
	}
	ctx := testCtx(t)
	// Sequential on purpose: the panic case checks that the same process keeps serving.
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			evs, res, err := invoke(ctx, p, tc.in)
			require.NoError(t, err)
			assert.Equal(t, tc.want, outputs(evs))
			assert.Equal(t, tc.kind, res.Kind)
			assert.Equal(t, tc.errText, res.Error)
			var kinds []plugin.EventKind
			for _, e := range evs {
				if e.Kind != plugin.EventOutput {
					kinds = append(kinds, e.Kind)
				}
			}
			assert.Equal(t, tc.events, kinds)
		})
	}

	t.Run("plugin logs are re-levelled on the host", func(t *testing.T) {
		_, res, err := invoke(ctx, p, "log")
		require.NoError(t, err)
		require.NoError(t, res.Err())
		var rec slog.Record
		require.Eventually(t, func() bool {
			var ok bool
			rec, ok = logs.find("from the function")
			return ok
		}, wait, time.Millisecond, "the plugin's log line never reached the host")
		assert.Equal(t, slog.LevelWarn, rec.Level)
		a := attrs(rec)
		assert.Equal(t, "fn", a["function"])
		assert.Equal(t, "v", a["k"])
	})
}

func TestDeadline(t *testing.T) {
	t.Parallel()
	p := start(t, "fn", plugin.Config{})
	ctx := testCtx(t)
	began := time.Now()
	res, err := p.Invoke(ctx, &plugin.Request{Payload: []byte("hang"), Deadline: time.Now().Add(100 * time.Millisecond)}, func(plugin.Event) error { return nil })
	require.NoError(t, err)
	assert.Equal(t, plugin.KindDeadline, res.Kind)
	assert.Less(t, time.Since(began), wait/2)
}

func TestEnforcedDeadline(t *testing.T) {
	t.Parallel()
	p := start(t, "fn", plugin.Config{})
	// Only against a hang, and with a cause of its own: only an enforced deadline gives
	// DeadlineExceeded.
	ctx, cancel := context.WithTimeoutCause(context.Background(), wait, errors.New("the enforced deadline did not end the call"))
	defer cancel()
	// The function ignores its context, so only the host can end the call at the deadline.
	_, err := p.Invoke(ctx, &plugin.Request{Payload: []byte("stuck"), Deadline: time.Now().Add(100 * time.Millisecond), EnforceDeadline: true},
		func(plugin.Event) error { return nil })
	require.ErrorIs(t, err, context.DeadlineExceeded)

	// A call that ends well before its enforced deadline leaves no timer behind: the next call,
	// likely on the recycled pendingCall, runs to its own deadline, not the first one's.
	res, err := p.Invoke(ctx, &plugin.Request{Payload: []byte("x"), Deadline: time.Now().Add(50 * time.Millisecond), EnforceDeadline: true},
		func(plugin.Event) error { return nil })
	require.NoError(t, err)
	require.NoError(t, res.Err())
	began := time.Now()
	const long = 300 * time.Millisecond
	res, err = p.Invoke(ctx, &plugin.Request{Payload: []byte("hang"), Deadline: began.Add(long), EnforceDeadline: true},
		func(plugin.Event) error { return nil })
	// A function that honours its context: the plugin's own answer or the host's, whichever
	// comes first at the deadline, and never before it.
	if err == nil {
		assert.Equal(t, plugin.KindDeadline, res.Kind)
	} else {
		require.ErrorIs(t, err, context.DeadlineExceeded)
	}
	assert.GreaterOrEqual(t, time.Since(began), long)
}

func TestKill9DuringInvocations(t *testing.T) {
	t.Parallel()
	p := start(t, "fn", plugin.Config{})
	ctx := testCtx(t)
	const n = 20
	errs := make(chan error, n)
	for range n {
		go func() {
			_, _, err := invoke(ctx, p, "hang")
			errs <- err
		}()
	}
	require.Eventually(t, func() bool {
		h, err := p.Health(ctx)
		return err == nil && h.InFlight == n
	}, wait, time.Millisecond)

	killed := time.Now()
	require.NoError(t, syscall.Kill(p.Pid(), syscall.SIGKILL))
	for range n {
		select {
		case err := <-errs:
			require.ErrorIs(t, err, plugin.ErrExited)
		case <-time.After(wait):
			t.Fatal("an Invoke in flight did not return after kill -9")
		}
	}
	t.Logf("in-flight invocations failed %s after kill -9", time.Since(killed))
	requireExited(t, p)
	_, _, err := invoke(ctx, p, "after")
	require.ErrorIs(t, err, plugin.ErrExited)
	p.Kill() // still fine after the process died
}

func TestSigtermStopsPlugin(t *testing.T) {
	t.Parallel()
	p := start(t, "echo", plugin.Config{})
	_, _, err := invoke(testCtx(t), p, "x")
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(p.Pid(), syscall.SIGTERM))
	requireExited(t, p)
}

func TestKillWithInvocationsInFlight(t *testing.T) {
	t.Parallel()
	p := start(t, "fn", plugin.Config{})
	ctx := testCtx(t)
	errc := make(chan error, 1)
	go func() {
		_, _, err := invoke(ctx, p, "hang")
		errc <- err
	}()
	require.Eventually(t, func() bool {
		h, err := p.Health(ctx)
		return err == nil && h.InFlight == 1
	}, wait, time.Millisecond)
	p.Kill()
	requireExited(t, p)
	select {
	case err := <-errc:
		require.ErrorIs(t, err, plugin.ErrClosed)
	case <-time.After(wait):
		t.Fatal("Invoke did not return after Kill")
	}
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  plugin.Config
	}{
		{"no path", plugin.Config{Info: plugin.Info{Name: "f"}}},
		{"missing binary", plugin.Config{Path: filepath.Join(t.TempDir(), "nope"), Info: plugin.Info{Name: "f"}}},
		{"not a plugin", plugin.Config{Path: "/bin/true", Info: plugin.Info{Name: "f"}}},
		{"no name", plugin.Config{Path: filepath.Join(binDir, "echo")}},
		{"bad user config", plugin.Config{Path: filepath.Join(binDir, "echo"), Info: plugin.Info{Name: "f", UserConfig: map[string]any{"c": make(chan int)}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := plugin.Start(testCtx(t), tc.cfg)
			if p != nil {
				p.Kill()
			}
			require.Error(t, err)
		})
	}
}

func TestStartCanceled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := plugin.Start(ctx, plugin.Config{Path: filepath.Join(binDir, "echo"), Info: plugin.Info{Name: "echo"}})
	require.True(t, errors.Is(err, context.Canceled), "%v", err)
}

func TestOrphanedPluginExits(t *testing.T) {
	t.Parallel()
	host := exec.Command(os.Args[0], "-test.run=^$")
	host.Env = append(os.Environ(), helperEnv+"="+filepath.Join(binDir, "fn"))
	out, err := host.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, host.Start())
	t.Cleanup(func() {
		_ = host.Process.Kill() // it is killed below already; this covers a failed test
		_ = host.Wait()         // its exit status is the kill's
	})
	var pid int
	_, err = fmt.Fscan(out, &pid)
	require.NoError(t, err, "reading the plugin's pid from the host")
	require.NoError(t, host.Process.Signal(syscall.SIGKILL))

	// The plugin notices it was orphaned, and exits (perhaps as a zombie until reaped).
	require.Eventually(t, func() bool { return !alive(pid) }, wait, 10*time.Millisecond,
		"the plugin %d outlived its host", pid)
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name: "pid (comm) S ...".
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || (s[i+2] != 'Z' && s[i+2] != 'X')
}

// TestMaxProcs: a plugin process runs with GOMAXPROCS=1 and GOGC=150 by default, with
// Config.MaxProcs and Config.GCPercent when set, and with Go's defaults when they are -1.
func TestMaxProcs(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/<pid>/environ")
	}
	for _, k := range []string{"GOMAXPROCS", "GOGC"} {
		if v, ok := os.LookupEnv(k); ok {
			t.Skipf("%s=%s in the test's environment overrides the Config", k, v)
		}
	}
	tests := []struct {
		name      string
		maxProcs  int
		gcPercent int
		want      []string // the GOMAXPROCS and GOGC entries
	}{
		{"default", 0, 0, []string{"GOMAXPROCS=1", "GOGC=150"}},
		{"set", 3, 250, []string{"GOMAXPROCS=3", "GOGC=250"}},
		{"go default", -1, -1, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := start(t, "echo", plugin.Config{MaxProcs: tc.maxProcs, GCPercent: tc.gcPercent})
			env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.Pid()))
			require.NoError(t, err)
			var got []string
			for kv := range strings.SplitSeq(string(env), "\x00") {
				if strings.HasPrefix(kv, "GOMAXPROCS=") || strings.HasPrefix(kv, "GOGC=") {
					got = append(got, kv)
				}
			}
			assert.Equal(t, tc.want, got)
		})
	}
}
