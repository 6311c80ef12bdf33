//go:build integration

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/internal/manifest"
	"github.com/fnhost/fnhost/internal/pulsartest"
	"github.com/fnhost/fnhost/runtime/host"
	"github.com/fnhost/fnhost/trigger"
	"github.com/fnhost/fnhost/trigger/pulsarinvoke"
)

// exampleManifest is a manifest for example fn under name, reading from in and writing to out.
func exampleManifest(t *testing.T, fn, name, in, out, extra string) *manifest.Function {
	t.Helper()
	src := filepath.Join(pulsartest.Root(t), "functions", fn)
	body := fmt.Sprintf("name: %s\ngo: %s\ninputs: [%s]\noutput: %s\nsubscriptionPosition: Earliest\n%s", name, src, in, out, extra)
	f, err := manifest.Parse(filepath.Join(t.TempDir(), name+".yaml"), []byte(body))
	require.NoError(t, err)
	return f
}

// serveTrigger runs a trigger over a Pulsar invoker with cfg on 127.0.0.1:0 until the test
// ends, and returns its base URL and the invoker.
func serveTrigger(t *testing.T, cfg pulsarinvoke.Config) (string, *pulsarinvoke.Invoker) {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg.ServiceURL, cfg.Logger = pulsartest.ServiceURL(), pulsartest.Logger(t)
	inv, err := pulsarinvoke.New(ctx, cfg)
	require.NoError(t, err)
	srv, err := trigger.New(trigger.Config{Invoker: inv, Publisher: inv, Logger: pulsartest.Logger(t), MaxConcurrent: 4096})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, ln) }()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(time.Minute):
			t.Error("trigger did not stop")
		}
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, inv.Close(cctx))
	})
	return "http://" + ln.Addr().String(), inv
}

// runPulsarHost runs a Pulsar-mode host runtime for fns until the test ends; with
// cleanShutdown, its shutdown must report no error.
func runPulsarHost(t *testing.T, fns []*manifest.Function, cleanShutdown bool) *host.Host {
	t.Helper()
	startCtx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	h, err := host.New(startCtx, host.Config{Functions: fns, PulsarURL: pulsartest.ServiceURL(), Logger: pulsartest.Logger(t),
		BuildDir: filepath.Join(t.TempDir(), "build")})
	require.NoError(t, err)
	hctx, stopHost := context.WithCancel(context.Background())
	hostDone := make(chan error, 1)
	go func() { hostDone <- h.Run(hctx) }()
	t.Cleanup(func() {
		stopHost()
		select {
		case err := <-hostDone:
			if cleanShutdown {
				assert.NoError(t, err)
			}
		case <-time.After(2 * time.Minute):
			t.Error("host did not stop")
		}
	})
	return h
}

func post(t *testing.T, url, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }() // a response body: closing it only releases the connection
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// TestTriggerPulsarHostRuntime: trigger → Pulsar → host runtime → Pulsar → trigger.
func TestTriggerPulsarHostRuntime(t *testing.T) {
	t.Parallel()
	pulsartest.Require(t)
	echo := exampleManifest(t, "echo", "echo-"+pulsartest.Name(t), pulsartest.Topic(t), pulsartest.Topic(t), "")
	stream := exampleManifest(t, "stream", "stream-"+pulsartest.Name(t), pulsartest.Topic(t), pulsartest.Topic(t), "")
	flaky := exampleManifest(t, "flaky", "flaky-"+pulsartest.Name(t), pulsartest.Topic(t), pulsartest.Topic(t), "maxMessageRetries: 0\n")
	retried := exampleManifest(t, "flaky", "retried-"+pulsartest.Name(t), pulsartest.Topic(t), pulsartest.Topic(t),
		"maxMessageRetries: 2\nuserConfig: {fnhost.retryBackoff: 50ms}\n")
	fns := []*manifest.Function{echo, stream, flaky, retried}

	runPulsarHost(t, fns, true)
	base, inv := serveTrigger(t, pulsarinvoke.Config{Functions: fns})

	t.Run("sync", func(t *testing.T) {
		resp, body := post(t, base+"/function/"+echo.Name, "hello", "X-Message-Key", "k1", "X-Message-Property-color", "blue")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		assert.Equal(t, "hello", body)
		assert.Equal(t, "k1", resp.Header.Get("X-Message-Key"))
		assert.Equal(t, "blue", resp.Header.Get("X-Message-Property-color"))
		assert.Equal(t, "1", resp.Header.Get("X-Output-Count"))
	})

	t.Run("stream", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodPost, base+"/function/"+stream.Name, strings.NewReader("7"))
		require.NoError(t, err)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer func() { _ = resp.Body.Close() }() // a response body: closing it only releases the connection
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var got []string
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				got = append(got, d)
			}
			if sc.Text() == "event: done" {
				break
			}
		}
		require.Len(t, got, 7)
		for i := range 7 {
			assert.Equal(t, fmt.Sprintf("chunk %d/7", i+1), got[i])
		}
	})

	t.Run("function error", func(t *testing.T) {
		resp, body := post(t, base+"/function/"+flaky.Name, "please fail")
		assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
		assert.Contains(t, body, `"code":"function_error"`)
		assert.Contains(t, body, "marker")
		assert.Contains(t, body, resp.Header.Get("X-Invocation-Id"))
	})

	t.Run("retried: the failed attempt's output does not mix", func(t *testing.T) {
		resp, body := post(t, base+"/function/"+retried.Name, "once more")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		assert.Equal(t, "once more", body, "only the retry's output")
		assert.Equal(t, "1", resp.Header.Get("X-Output-Count"))

		req, err := http.NewRequest(http.MethodPost, base+"/function/"+retried.Name, strings.NewReader("once again"))
		require.NoError(t, err)
		req.Header.Set("Accept", "text/event-stream")
		sresp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer func() { _ = sresp.Body.Close() }() // a response body: closing it only releases the connection
		raw, err := io.ReadAll(sresp.Body)
		require.NoError(t, err)
		assert.Contains(t, string(raw), "id: 0\nevent: output\ndata: partial output of a failing attempt\n\n"+
			"event: restart\ndata: {\"invocation_id\":\""+sresp.Header.Get("X-Invocation-Id")+"\",\"attempt\":1}\n\n"+
			"id: 1\nevent: output\ndata: once again\n\nevent: done\n")
	})

	t.Run("no output", func(t *testing.T) {
		resp, body := post(t, base+"/function/"+stream.Name, "")
		assert.Equal(t, http.StatusNoContent, resp.StatusCode, body)
	})

	t.Run("concurrent", func(t *testing.T) {
		const n = 200
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				in := fmt.Sprintf("call-%d", i)
				resp, err := http.Post(base+"/function/"+echo.Name, "text/plain", strings.NewReader(in))
				if err != nil {
					errs <- err
					return
				}
				defer func() { _ = resp.Body.Close() }() // a response body: closing it only releases the connection
				b, err := io.ReadAll(resp.Body)
				if err == nil && (resp.StatusCode != http.StatusOK || string(b) != in) {
					err = fmt.Errorf("call %d: %s %q", i, resp.Status, b)
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
	})

	t.Run("latency", func(t *testing.T) {
		const n = 200
		lat := make([]time.Duration, 0, n)
		for i := range n {
			start := time.Now()
			resp, body := post(t, base+"/function/"+echo.Name, fmt.Sprint(i))
			lat = append(lat, time.Since(start))
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
		}
		slices.Sort(lat)
		t.Logf("sync invoke through trigger → Pulsar → host runtime → Pulsar → trigger, %d calls: p50 %s, p90 %s, p99 %s, max %s",
			n, lat[n/2], lat[n*9/10], lat[n*99/100], lat[n-1])
	})

	t.Run("cli", func(t *testing.T) {
		var stdout, stderr strings.Builder
		err := invokeCmd(context.Background(), []string{stream.Name, "--stream", "--data", "3", "--url", base}, nil, nil, &stdout, &stderr)
		require.NoError(t, err, stderr.String())
		assert.Equal(t, "chunk 1/3\nchunk 2/3\nchunk 3/3\n", stdout.String())
	})
	st := inv.Stats()
	t.Logf("invoker stats: %+v", st)
	assert.Zero(t, st.FallbackMatched, "manifest functions reply to reply-to")
}

// TestTriggerPulsarWorker deploys echo into the Pulsar Functions worker with the real
// pulsar-admin and invokes it through the trigger, which finds it through the admin API.
func TestTriggerPulsarWorker(t *testing.T) {
	t.Parallel()
	pulsartest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	name := pulsartest.Name(t)
	in, out := pulsartest.Topic(t), pulsartest.Topic(t)
	admin := pulsartest.FunctionsAdmin(t)
	t.Cleanup(func() {
		if err := admin.Functions().DeleteFunction("public", "default", name); err != nil {
			t.Errorf("deleting %s: %v", name, err)
		}
	})
	cmd := exec.CommandContext(ctx, filepath.Join(pulsartest.Root(t), "scripts", "deploy"), "echo", "--", "--name", name, "--inputs", in, "--output", out)
	cmd.Env = append(os.Environ(), "PULSAR_ADMIN_URL="+pulsartest.AdminURL())
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "scripts/deploy:\n%s", b)

	base, inv := serveTrigger(t, pulsarinvoke.Config{AdminURL: pulsartest.AdminURL()})
	resp, body := post(t, base+"/function/"+name, "hello worker", "X-Timeout", "30s")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, "hello worker", body)
	for i := range 20 {
		resp, body := post(t, base+"/v1/functions/public/default/"+name+"/invoke", fmt.Sprint(i))
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		assert.Equal(t, fmt.Sprint(i), body)
	}
	assert.Zero(t, inv.Stats().FallbackMatched, "the SDK's instance replies to reply-to")

	resp, body = post(t, base+"/function/no-such-"+name, "x")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, body)

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/functions/public/default/"+name, nil)
	require.NoError(t, err)
	r, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = r.Body.Close() }() // a response body: closing it only releases the connection
	cat, err := io.ReadAll(r.Body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, r.StatusCode)
	assert.Contains(t, string(cat), in)
	assert.False(t, errors.Is(ctx.Err(), context.DeadlineExceeded))
}
