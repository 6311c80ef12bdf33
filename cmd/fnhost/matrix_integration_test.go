//go:build integration

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/internal/manifest"
	"github.com/fnhost/fnhost/internal/pulsartest"
	"github.com/fnhost/fnhost/trigger/pulsarinvoke"
)

// example is one example function called with one input, and what it must answer.
type example struct {
	fn, extra string // the function, and manifest lines the host runtime needs (userConfig)
	in, key   string
	// want are the output payloads; check replaces the comparison when set (it gets the
	// function's input topic).
	want    []string
	check   func(t *testing.T, inTopic, out string)
	wantErr string // the function fails with an error containing this
}

var examples = []example{
	{fn: "echo", in: "hello", want: []string{"hello"}},
	{fn: "upper", in: "hello", want: []string{"HELLO"}},
	{fn: "wordcount", extra: "userConfig: {minLength: 2, ignoreCase: true}\n", in: "a bb bb ccc", want: []string{`{"words":3,"counts":{"bb":2,"ccc":1}}`}},
	{fn: "enrich", extra: "userConfig: {source: fnhost-example}\n", in: `{"order":7}`, key: "customer-9",
		check: func(t *testing.T, inTopic, out string) {
			assert.JSONEq(t, fmt.Sprintf(`{"order":7,"_meta":{"key":"customer-9","topic":%q,"source":"fnhost-example"}}`, inTopic), out)
		}},
	{fn: "stream", in: "3", want: []string{"chunk 1/3", "chunk 2/3", "chunk 3/3"}},
	{fn: "flaky", extra: flakyRetries, in: "fine", want: []string{"fine"}},
	{fn: "flaky", extra: flakyRetries, in: "please fail", wantErr: "input contains the marker"},
	// The first attempt emits a partial output and fails; the caller gets the retry's only.
	{fn: "flaky", extra: flakyRetries, in: "once more", want: []string{"once more"}},
}

// flakyRetries retries flaky in the host runtime as its manifest does in the worker.
const flakyRetries = "maxMessageRetries: 2\nuserConfig: {fnhost.retryBackoff: 50ms}\n"

// placed is an example function running somewhere, under its own name.
type placed struct {
	name, in string
}

// TestEveryExampleEveryMode invokes every example function synchronously, over SSE, over
// NDJSON and asynchronously through one trigger, with the function running in the host runtime
// and deployed into the Pulsar Functions worker with the real pulsar-admin.
func TestEveryExampleEveryMode(t *testing.T) {
	t.Parallel()
	pulsartest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	fns := map[string]bool{}
	for _, ex := range examples {
		fns[ex.fn] = true
	}
	hosted := map[string]placed{}
	var manifests []*manifest.Function
	for fn := range fns {
		var extra string
		for _, ex := range examples {
			if ex.fn == fn {
				extra = ex.extra
			}
		}
		in := pulsartest.Topic(t)
		m := exampleManifest(t, fn, fn+"-"+pulsartest.Name(t), in, pulsartest.Topic(t), extra)
		manifests = append(manifests, m)
		hosted[fn] = placed{m.Name, in}
	}
	runPulsarHost(t, manifests, true)

	// Deployed into the worker by scripts/deploy (pulsar-admin), all at once.
	deployedTo := map[string]placed{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	admin := pulsartest.FunctionsAdmin(t)
	for fn := range fns {
		p := placed{"w-" + fn + "-" + pulsartest.Name(t), pulsartest.Topic(t)}
		out := pulsartest.Topic(t)
		t.Cleanup(func() {
			if err := admin.Functions().DeleteFunction("public", "default", p.name); err != nil {
				t.Errorf("deleting %s: %v", p.name, err)
			}
		})
		wg.Go(func() {
			cmd := exec.CommandContext(ctx, filepath.Join(pulsartest.Root(t), "scripts", "deploy"), fn, "--",
				"--name", p.name, "--inputs", p.in, "--output", out)
			cmd.Env = append(os.Environ(), "PULSAR_ADMIN_URL="+pulsartest.AdminURL())
			b, err := cmd.CombinedOutput()
			if !assert.NoError(t, err, "scripts/deploy %s:\n%s", fn, b) {
				return
			}
			mu.Lock()
			deployedTo[fn] = p
			mu.Unlock()
		})
	}
	wg.Wait()
	require.Len(t, deployedTo, len(fns))

	base, _ := serveTrigger(t, pulsarinvoke.Config{Functions: manifests, AdminURL: pulsartest.AdminURL()})
	for where, placement := range map[string]map[string]placed{"host runtime": hosted, "pulsar functions": deployedTo} {
		for _, ex := range examples {
			p := placement[ex.fn]
			url := base + "/v1/functions/public/default/" + p.name + "/invoke"
			for _, mode := range []string{"sync", "sse", "ndjson", "async"} {
				t.Run(where+"/"+ex.fn+"("+ex.in+")/"+mode, func(t *testing.T) {
					outs, errText := invokeIn(ctx, t, base, url, mode, ex)
					if ex.wantErr != "" {
						assert.Contains(t, errText, ex.wantErr)
						return
					}
					require.Empty(t, errText)
					if ex.check != nil {
						require.Len(t, outs, 1)
						ex.check(t, p.in, outs[0])
						return
					}
					assert.Equal(t, ex.want, outs)
				})
			}
		}
	}
}

// invokeIn invokes url with ex's input in mode and returns the output payloads, or the error
// text of a failed invocation.
func invokeIn(ctx context.Context, t *testing.T, base, url, mode string, ex example) ([]string, string) {
	t.Helper()
	header := []string{"X-Timeout", "60s"}
	if ex.key != "" {
		header = append(header, "X-Message-Key", ex.key)
	}
	switch mode {
	case "sync":
		resp, body := post(t, url, ex.in, header...)
		switch {
		case resp.StatusCode == http.StatusBadGateway:
			return nil, body
		case resp.StatusCode != http.StatusOK:
			t.Fatalf("sync: %s: %s", resp.Status, body)
		case resp.Header.Get("X-Output-Count") == "1":
			return []string{body}, ""
		}
		return payloads(t, []byte(body)), ""
	case "sse":
		return readStream(ctx, t, url, ex.in, "text/event-stream", header)
	case "ndjson":
		return readStream(ctx, t, url, ex.in, "application/x-ndjson", header)
	}
	resp, body := post(t, url, ex.in, append(header, "Prefer", "respond-async")...)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, body)
	id := resp.Header.Get("X-Invocation-Id")
	// Following its events waits, within ctx, for the end. The record is read through a
	// table view that may trail the events by a moment: wait for it to leave "running".
	_, _ = followEvents(ctx, t, base+"/v1/invocations/"+id+"/events")
	type record struct {
		Status  string            `json:"status"`
		Outputs json.RawMessage   `json:"outputs"`
		Error   map[string]string `json:"error"`
	}
	var rec record
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		rec = record{}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/invocations/"+id, nil)
		require.NoError(c, err)
		r, err := http.DefaultClient.Do(req)
		require.NoError(c, err)
		defer func() { _ = r.Body.Close() }() // a response body: closing it only releases the connection
		require.NoError(c, json.NewDecoder(r.Body).Decode(&rec))
		assert.NotEqual(c, "running", rec.Status, "invocation %s", id)
	}, 30*time.Second, 100*time.Millisecond)
	if rec.Status == "failed" {
		return nil, rec.Error["message"]
	}
	require.Equal(t, "succeeded", rec.Status)
	if len(rec.Outputs) == 0 {
		return nil, ""
	}
	return payloads(t, rec.Outputs), ""
}

// payloads decodes a JSON array of outputs.
func payloads(t *testing.T, b []byte) []string {
	t.Helper()
	var outs []struct {
		Payload string `json:"payload"`
	}
	require.NoError(t, json.Unmarshal(b, &outs), "%s", b)
	var got []string
	for _, o := range outs {
		got = append(got, o.Payload)
	}
	return got
}

// readStream invokes url with Accept: accept and reads the stream to its end.
func readStream(ctx context.Context, t *testing.T, url, in, accept string, header []string) ([]string, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(in))
	require.NoError(t, err)
	req.Header.Set("Accept", accept)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }() // a response body: closing it only releases the connection
	if resp.StatusCode == http.StatusBadGateway {
		var e struct {
			Error map[string]string `json:"error"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
		return nil, e.Error["message"]
	}
	require.Equal(t, http.StatusOK, resp.StatusCode)
	if accept == "text/event-stream" {
		return sseOutputs(t, resp)
	}
	var outs []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var line struct {
			Payload *string           `json:"payload"`
			Done    bool              `json:"done"`
			Restart bool              `json:"restart"`
			Error   map[string]string `json:"error"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &line), sc.Text())
		switch {
		case line.Restart:
			outs = nil // the function was retried: what came before is superseded
		case line.Done && line.Error != nil:
			return outs, line.Error["message"]
		case line.Done:
			return outs, ""
		case line.Payload != nil:
			outs = append(outs, *line.Payload)
		}
	}
	t.Fatalf("ndjson stream ended without its done line: %v", sc.Err())
	return nil, ""
}

// followEvents follows an event stream (GET) to its end.
func followEvents(ctx context.Context, t *testing.T, url string) ([]string, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }() // a response body: closing it only releases the connection
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return sseOutputs(t, resp)
}

// sseOutputs reads output events up to "done" (or "error", whose message it returns).
func sseOutputs(t *testing.T, resp *http.Response) ([]string, string) {
	t.Helper()
	var outs []string
	var event string
	var data []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: "))
		case line == "":
			joined := strings.Join(data, "\n")
			switch event {
			case "output":
				outs = append(outs, joined)
			case "restart":
				outs = nil // the function was retried: what came before is superseded
			case "done":
				return outs, ""
			case "error":
				var e map[string]string
				require.NoError(t, json.Unmarshal([]byte(joined), &e), joined)
				return outs, e["message"]
			}
			event, data = "", nil
		}
	}
	t.Fatalf("event stream ended without done or error: %v", sc.Err())
	return nil, ""
}
