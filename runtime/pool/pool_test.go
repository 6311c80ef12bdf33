package pool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/functions/pf/plugin"
)

var (
	buildOnce sync.Map // version -> *builtBinary
)

type builtBinary struct {
	once sync.Once
	path string
	err  error
}

// testBinary builds testdata/testfn with the given version once per test run.
func testBinary(t *testing.T, version string) string {
	t.Helper()
	v, _ := buildOnce.LoadOrStore(version, &builtBinary{})
	b := v.(*builtBinary)
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "fnhost-pool-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "testfn-"+version)
		cmd := exec.Command("go", "build", "-o", b.path, "-ldflags", "-X main.version="+version, "./testdata/testfn")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, b.err)
	return b.path
}

// copyExecutable copies src to dst through cp, so that this process never
// holds dst open for writing. Other tests fork plugins at any moment, and a
// child forked while this process writes dst keeps the write descriptor until
// it execs; starting dst then fails with "text file busy" (Go issue 22315).
func copyExecutable(t *testing.T, src, dst string) {
	t.Helper()
	out, err := exec.Command("cp", src, dst).CombinedOutput()
	require.NoError(t, err, "cp %s %s: %s", src, dst, out)
}

func TestMain(m *testing.M) {
	code := m.Run()
	buildOnce.Range(func(_, v any) bool {
		if b := v.(*builtBinary); b.path != "" {
			if err := os.RemoveAll(filepath.Dir(b.path)); err != nil {
				fmt.Fprintln(os.Stderr, "removing the test binaries:", err)
			}
		}
		return true
	})
	os.Exit(code)
}

func startPool(t *testing.T, cfg Config) *Pool {
	t.Helper()
	if cfg.Info.Name == "" {
		cfg.Info = plugin.Info{Tenant: "public", Namespace: "default", Name: "testfn"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := Start(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, p.Close(ctx))
	})
	return p
}

// call invokes payload and returns the outputs joined, or the error.
func call(ctx context.Context, p *Pool, payload string) (string, error) {
	var out []byte
	res, _, err := p.Invoke(ctx, &plugin.Request{Payload: []byte(payload)}, func(e plugin.Event) error {
		if e.Kind == plugin.EventOutput {
			out = append(out, e.Output.Payload...)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if err := res.Err(); err != nil {
		return "", err
	}
	return string(out), nil
}

func TestInvokeConcurrently(t *testing.T) {
	t.Parallel()
	p := startPool(t, Config{Binary: testBinary(t, "v1"), Parallelism: 2})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Go(func() {
			out, err := call(ctx, p, fmt.Sprint(i))
			if err == nil && out != fmt.Sprintf("v1:%d", i) {
				err = fmt.Errorf("input %d: got %q", i, out)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := p.Status()
	require.Len(t, st.Slots, 2)
	for _, s := range st.Slots {
		assert.Equal(t, Running, s.State)
		assert.NotZero(t, s.Pid)
	}
}

func TestCrashIsRestarted(t *testing.T) {
	t.Parallel()
	restarted := make(chan int, 4)
	p := startPool(t, Config{Binary: testBinary(t, "v1"), OnRestart: func(slot int) { restarted <- slot }})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	_, err := call(ctx, p, "exit")
	require.ErrorIs(t, err, ErrUnavailable, "an invocation whose process died has no result")
	select {
	case <-restarted:
	case <-ctx.Done():
		t.Fatal("the crashed process was not restarted")
	}
	out, err := call(ctx, p, "after")
	require.NoError(t, err)
	assert.Equal(t, "v1:after", out)
	assert.Equal(t, 1, p.Status().Slots[0].Restarts)
}

func TestKill9DuringInvocations(t *testing.T) {
	t.Parallel()
	restarted := make(chan int, 4)
	p := startPool(t, Config{Binary: testBinary(t, "v1"), OnRestart: func(slot int) { restarted <- slot }})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	pid := p.Pids()[0]
	results := make(chan error, 10)
	var started sync.WaitGroup
	for range 10 {
		started.Add(1)
		go func() {
			started.Done()
			_, err := call(ctx, p, "sleep:1h")
			results <- err
		}()
	}
	started.Wait()
	require.Eventually(t, func() bool {
		h, err := p.slots[0].current().Health(ctx)
		return err == nil && h.InFlight == 10
	}, 30*time.Second, 10*time.Millisecond, "the ten invocations reach the plugin")
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	for range 10 {
		select {
		case err := <-results:
			assert.ErrorIs(t, err, ErrUnavailable)
		case <-ctx.Done():
			t.Fatal("an invocation in flight on a killed process did not return")
		}
	}
	select {
	case <-restarted:
	case <-ctx.Done():
		t.Fatal("not restarted after kill -9")
	}
	assert.NotEqual(t, pid, p.Pids()[0])
	out, err := call(ctx, p, "x")
	require.NoError(t, err)
	assert.Equal(t, "v1:x", out)
}

func TestReloadLosesNothing(t *testing.T) {
	t.Parallel()
	v2 := testBinary(t, "v2")
	p := startPool(t, Config{Binary: testBinary(t, "v1"), Parallelism: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[string]int{}
	var failures []error
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				out, err := call(ctx, p, fmt.Sprintf("w%d-%d", w, i))
				mu.Lock()
				if err != nil {
					failures = append(failures, err)
				} else {
					seen[out[:2]]++
				}
				mu.Unlock()
			}
		})
	}
	require.NoError(t, p.Reload(ctx, v2))
	out, err := call(ctx, p, "after")
	require.NoError(t, err)
	assert.Equal(t, "v2:after", out)
	close(stop)
	wg.Wait()
	assert.Empty(t, failures, "no invocation fails during a reload")
	assert.Positive(t, seen["v1"])
	assert.Equal(t, 1, p.Status().Reloads)
	assert.Equal(t, v2, p.Status().Binary)
}

func TestSlotMarkedFailed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "fn")
	copyExecutable(t, testBinary(t, "v1"), bin)
	p := startPool(t, Config{Binary: bin, FailAfter: 2, MaxRestartBackoff: 200 * time.Millisecond})

	// From now on the binary cannot start; crash the running process.
	broken := filepath.Join(dir, "broken")
	require.NoError(t, os.WriteFile(broken, []byte("#!/bin/sh\nexit 1\n"), 0o755))
	require.NoError(t, os.Remove(bin))
	copyExecutable(t, broken, bin)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := call(ctx, p, "exit")
	require.ErrorIs(t, err, ErrUnavailable)
	require.Eventually(t, func() bool { return p.Status().Slots[0].State == Failed }, 30*time.Second, 10*time.Millisecond)
	assert.NotEmpty(t, p.Status().Slots[0].LastError)

	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	_, err = call(short, p, "x")
	assert.ErrorIs(t, err, ErrUnavailable, "no process: the caller's deadline ends the wait")

	// Only against a hang, and with a cause of its own: only the enforced deadline gives DeadlineExceeded.
	bounded, cancelBounded := context.WithTimeoutCause(context.Background(), time.Minute, errors.New("the enforced deadline did not end the wait"))
	defer cancelBounded()
	_, _, err = p.Invoke(bounded, &plugin.Request{Payload: []byte("x"), Deadline: time.Now().Add(50 * time.Millisecond), EnforceDeadline: true},
		func(plugin.Event) error { return nil })
	assert.ErrorIs(t, err, ErrUnavailable, "no process: an enforced deadline ends the wait")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestCloseIsIdempotent(t *testing.T) {
	t.Parallel()
	p := startPool(t, Config{Binary: testBinary(t, "v1")})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pid := p.Pids()[0]
	require.NoError(t, p.Close(ctx))
	require.NoError(t, p.Close(ctx))
	_, err := call(ctx, p, "x")
	assert.ErrorIs(t, err, ErrUnavailable)
	assert.True(t, errors.Is(syscall.Kill(pid, 0), syscall.ESRCH), "the plugin process is gone")
}
