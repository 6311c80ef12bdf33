//go:build integration && disruptive

package main

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/internal/manifest"
	"github.com/fnhost/fnhost/internal/pulsartest"
	"github.com/fnhost/fnhost/trigger/pulsarinvoke"
)

// TestDisruptivePulsarStop stops the standalone under a trigger and a runtime: calls answer
// 503 at once instead of hanging, and service resumes by itself when Pulsar is back.
func TestDisruptivePulsarStop(t *testing.T) {
	pulsartest.Require(t)
	script := filepath.Join(pulsartest.Root(t), "scripts", "pulsar")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	status, err := exec.CommandContext(ctx, script, "status").Output()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(status), "running: "), "scripts/pulsar must own the standalone: %s", status)

	name := pulsartest.Name(t)
	in, out := pulsartest.Topic(t), pulsartest.Topic(t)
	fns := []*manifest.Function{exampleManifest(t, "upper", name, in, out, "")}
	// After an outage the shutdown may report unflushed work; the outage is the test.
	runPulsarHost(t, fns, false)
	url, _ := serveTrigger(t, pulsarinvoke.Config{Functions: fns})
	// invoke calls the function; an HTTP-level failure comes back as status 0 and its text.
	invoke := func() (int, string) {
		rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
		defer rcancel()
		req, err := http.NewRequestWithContext(rctx, http.MethodPost, url+"/function/"+name, strings.NewReader("hello"))
		if err != nil {
			return 0, err.Error()
		}
		req.Header.Set("X-Timeout", "20s")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer func() { _ = resp.Body.Close() }() // a response body: closing it only releases the connection
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return 0, err.Error()
		}
		return resp.StatusCode, string(b)
	}
	code, body := invoke()
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, "HELLO", body)

	out1, err := exec.CommandContext(ctx, script, "stop").CombinedOutput()
	require.NoError(t, err, "%s", out1)
	t.Cleanup(func() {
		// Leave a standalone running for whatever runs next, whatever happened here.
		_ = exec.Command(script, "start").Run()
	})
	code, body = invoke()
	assert.Equal(t, http.StatusServiceUnavailable, code, body)

	out2, err := exec.CommandContext(ctx, script, "start").CombinedOutput()
	require.NoError(t, err, "%s", out2)
	require.Eventually(t, func() bool {
		code, body := invoke()
		return code == http.StatusOK && body == "HELLO"
	}, 3*time.Minute, time.Second, "service resumes by itself once Pulsar is back")
}
