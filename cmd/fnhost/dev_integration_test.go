//go:build integration

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/internal/pulsartest"
	"github.com/fnhost/fnhost/trigger"
)

// startDev runs `fnhost dev` with args (plus test addresses and a build directory) until the
// test ends, and returns the base URL of its trigger and a function that stops it and returns
// run's error (also called at the end of the test).
func startDev(t *testing.T, args ...string) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	runCtx, stop := context.WithCancel(ctx)
	outR, outW := io.Pipe()
	var stderr strings.Builder
	lw := &lockedWriter{w: &stderr}
	done := make(chan error, 1)
	go func() {
		done <- run(runCtx, append([]string{"dev", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
			"--build-dir", t.TempDir(), "--watch=false"}, args...), []string{"FNHOST_LOG_LEVEL=warn"}, outW, lw)
		_ = outW.Close() // an io.PipeWriter closes without error
	}()
	once := sync.OnceValue(func() error {
		stop()
		select {
		case err := <-done:
			return err
		case <-time.After(2 * time.Minute):
			return errors.New("fnhost dev did not stop within 2m")
		}
	})
	t.Cleanup(func() { assert.NoError(t, once()) })

	curlLine := regexp.MustCompile(`curl -s -d 'hello fnhost' (http://[^/\s]+)/function/`)
	var base string
	sc := bufio.NewScanner(outR)
	for sc.Scan() {
		if m := curlLine.FindStringSubmatch(sc.Text()); m != nil {
			base = m[1]
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, outR) }() // the rest of stdout, until run returns
	if base == "" {
		lw.mu.Lock()
		defer lw.mu.Unlock()
		t.Fatalf("fnhost dev printed no curl line; stderr:\n%s", stderr.String())
	}
	return base, once
}

// getRecord fetches GET /v1/invocations/{id} from base.
func getRecord(t *testing.T, base, id string) (int, trigger.Invocation) {
	t.Helper()
	resp, err := http.Get(base + "/v1/invocations/" + id)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }() // a response body: closing it only releases the connection
	var rec trigger.Invocation
	if resp.StatusCode == http.StatusOK {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&rec))
	}
	return resp.StatusCode, rec
}

// TestDevPulsarStoresRecordsInPulsar: with --pulsar-url, fnhost dev keeps async invocation
// records in the Pulsar store, so another trigger on the same store topic answers for them,
// also once dev has stopped.
func TestDevPulsarStoresRecordsInPulsar(t *testing.T) {
	t.Parallel()
	pulsartest.Require(t)
	name := "echo-" + pulsartest.Name(t)
	dir := t.TempDir()
	doc := fmt.Sprintf("name: %s\ngo: %s\ninputs: [%s]\nsubscriptionPosition: Earliest\n",
		name, filepath.Join(pulsartest.Root(t), "functions", "echo"), pulsartest.Topic(t))
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(doc), 0o644))
	storeTopic := pulsartest.Topic(t)

	devURL, stopDev := startDev(t, "--manifests", dir, "--pulsar-url", pulsartest.ServiceURL(),
		"--admin-url", pulsartest.AdminURL(), "--store-topic", storeTopic)
	resp, body := post(t, devURL+"/function/"+name, "hello store", "Prefer", "respond-async")
	require.Equal(t, http.StatusAccepted, resp.StatusCode, body)
	id := resp.Header.Get("X-Invocation-Id")
	require.NotEmpty(t, id)

	final := func(base string) func() bool {
		return func() bool {
			status, rec := getRecord(t, base, id)
			return status == http.StatusOK && rec.Status.Final()
		}
	}
	require.Eventually(t, final(devURL), time.Minute, 50*time.Millisecond, "dev's own record")

	other, _ := serveTriggerWithStore(t, nil, storeTopic)
	require.Eventually(t, final(other), time.Minute, 50*time.Millisecond, "the record through a second trigger")
	_, rec := getRecord(t, other, id)
	assert.Equal(t, trigger.StatusSucceeded, rec.Status)
	require.Len(t, rec.Outputs, 1)
	assert.Equal(t, "hello store", string(rec.Outputs[0].Payload))
	assert.Equal(t, name, rec.Function.Name)

	require.NoError(t, stopDev())
	status, rec := getRecord(t, other, id)
	assert.Equal(t, http.StatusOK, status, "the record outlives dev")
	assert.Equal(t, trigger.StatusSucceeded, rec.Status)
}
