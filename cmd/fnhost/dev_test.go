package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDevEmbedded runs fnhost dev on the project's manifests as a new user would, with no
// Pulsar, and follows the curl line it prints.
func TestDevEmbedded(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	outR, outW := io.Pipe()
	var stderr strings.Builder
	done := make(chan error, 1)
	go func() {
		done <- run(runCtx, []string{"dev", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
			"--manifests", filepath.Join("..", "..", "manifests", "functions"), "--build-dir", t.TempDir(), "--watch=false"},
			[]string{"FNHOST_LOG_LEVEL=warn"}, outW, &lockedWriter{w: &stderr})
		_ = outW.Close() // an io.PipeWriter closes without error
	}()

	curlLine := regexp.MustCompile(`curl -s -d 'hello fnhost' (http://\S+)`)
	var url string
	sc := bufio.NewScanner(outR)
	for sc.Scan() {
		if m := curlLine.FindStringSubmatch(sc.Text()); m != nil {
			url = m[1]
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, outR) }() // the rest of stdout, until run returns
	require.NotEmpty(t, url, "fnhost dev printed no curl line; stderr:\n%s", stderr.String())
	assert.True(t, strings.HasSuffix(url, "/function/echo"))

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader("hello fnhost"))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close() // a response body: closing it only releases the connection
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "hello fnhost", string(body))

	stop()
	select {
	case err := <-done:
		assert.NoError(t, err, "a clean shutdown")
	case <-ctx.Done():
		t.Fatal("fnhost dev did not stop")
	}
}

func TestServeConfigFromEnv(t *testing.T) {
	t.Parallel()
	c, err := serveConfigFromEnv([]string{"FNHOST_ADDR=0.0.0.0:9", "FNHOST_WATCH=false", "FNHOST_LOG_LEVEL=debug", "PATH=/bin", "FNHOST_SHUTDOWN_TIMEOUT=5s"})
	require.NoError(t, err)
	assert.Equal(t, "0.0.0.0:9", c.Addr)
	assert.False(t, c.Watch)
	assert.Equal(t, 5*time.Second, c.ShutdownTimeout)

	_, err = serveConfigFromEnv([]string{"FNHOST_WATCH=maybe", "FNHOST_MAX_IN_FLIGHT=0", "FNHOST_SHUTDOWN_TIMEOUT=soon"})
	require.Error(t, err)
	for _, want := range []string{"FNHOST_WATCH", "FNHOST_MAX_IN_FLIGHT", "FNHOST_SHUTDOWN_TIMEOUT"} {
		assert.Contains(t, err.Error(), want)
	}
}

func TestAuthFromEnv(t *testing.T) {
	t.Parallel()
	a, err := authFromEnv([]string{"FNHOST_TRIGGER_TOKENS=s3cret-token:invoke:public/default/*,read", "FNHOST_TRIGGER_JWT_HS256_SECRET=0123456789abcdef0123456789abcdef"})
	require.NoError(t, err)
	require.Len(t, a.Tokens, 1)
	require.NotNil(t, a.JWT)
	assert.False(t, a.Disabled)

	_, err = authFromEnv([]string{"FNHOST_TRIGGER_TOKENS=s3cret-token", "FNHOST_TRIGGER_AUTH_DISABLED=maybe"})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "s3cret", "the error does not echo the secret")
	assert.Contains(t, err.Error(), "FNHOST_TRIGGER_AUTH_DISABLED")
}
