//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/internal/manifest"
	"github.com/fnhost/fnhost/internal/pulsartest"
	"github.com/fnhost/fnhost/trigger"
	"github.com/fnhost/fnhost/trigger/pulsarinvoke"
)

// TestTwoTriggers: two trigger instances, each with its own reply topic, share the load of
// 1,000 concurrent requests to a function in the host runtime, and every caller gets its own
// output back.
func TestTwoTriggers(t *testing.T) {
	t.Parallel()
	pulsartest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	name := pulsartest.Name(t)
	in, out := pulsartest.Topic(t), pulsartest.Topic(t)
	fns := []*manifest.Function{exampleManifest(t, "upper", name, in, out, "parallelism: 2\n")}
	runPulsarHost(t, fns, true)

	urlA, invA := serveTrigger(t, pulsarinvoke.Config{Functions: fns})
	urlB, invB := serveTrigger(t, pulsarinvoke.Config{Functions: fns})
	require.NotEqual(t, invA.ReplyTopic(), invB.ReplyTopic(), "each instance has its own reply topic")

	const n = 1000
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	for i := range n {
		wg.Go(func() {
			base := urlA
			if i%2 == 1 {
				base = urlB
			}
			body := fmt.Sprintf("caller-%d", i)
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/function/"+name, strings.NewReader(body))
			if err == nil {
				var resp *http.Response
				resp, err = client.Do(req)
				if err == nil {
					got, rerr := io.ReadAll(resp.Body)
					_ = resp.Body.Close() // a response body: closing it only releases the connection
					switch {
					case rerr != nil:
						err = rerr
					case resp.StatusCode != http.StatusOK || string(got) != strings.ToUpper(body):
						err = fmt.Errorf("%s: %s %q", body, resp.Status, got)
					}
				}
			}
			if err != nil {
				mu.Lock()
				failures = append(failures, err.Error())
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	assert.Empty(t, failures, "every caller gets its own output")
	assert.Zero(t, invA.Stats().Dropped+invB.Stats().Dropped, "no reply went unclaimed")
}

// serveTriggerWithStore runs a trigger whose async records live on storeTopic, on its own
// client, and returns its URL and a function that stops it (also called when the test ends).
func serveTriggerWithStore(t *testing.T, fns []*manifest.Function, storeTopic string) (string, func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := pulsartest.Client(t)
	inv, err := pulsarinvoke.New(ctx, pulsarinvoke.Config{Client: client, Functions: fns, Logger: pulsartest.Logger(t)})
	require.NoError(t, err)
	st, err := pulsarinvoke.NewStore(ctx, pulsarinvoke.StoreConfig{Client: client, Topic: storeTopic, AdminURL: pulsartest.AdminURL(), Logger: pulsartest.Logger(t)})
	require.NoError(t, err)
	srv, err := trigger.New(trigger.Config{Invoker: inv, Publisher: inv, Store: st, Logger: pulsartest.Logger(t), MaxOutputBytes: 3 << 20})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	sctx, stopServe := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, ln) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			stopServe()
			assert.NoError(t, <-done)
			cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			assert.NoError(t, inv.Close(cctx))
			assert.NoError(t, st.Close(cctx))
		})
	}
	t.Cleanup(stop)
	return "http://" + ln.Addr().String(), stop
}

// TestAsyncRecordsInPulsar: an async invocation accepted by one trigger instance is served by
// a second one, survives the first one's restart, and its callback arrives.
func TestAsyncRecordsInPulsar(t *testing.T) {
	t.Parallel()
	pulsartest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	name := pulsartest.Name(t)
	in, out := pulsartest.Topic(t), pulsartest.Topic(t)
	fns := []*manifest.Function{exampleManifest(t, "upper", name, in, out, "")}
	runPulsarHost(t, fns, true)

	callbacks := make(chan trigger.Invocation, 4)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rec trigger.Invocation
		if err := json.NewDecoder(r.Body).Decode(&rec); err == nil {
			callbacks <- rec
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer cb.Close()

	storeTopic := pulsartest.Topic(t)
	urlA, stopA := serveTriggerWithStore(t, fns, storeTopic)
	urlB, _ := serveTriggerWithStore(t, fns, storeTopic)

	resp, body := post(t, urlA+"/function/"+name, "hello", "Prefer", "respond-async", "X-Callback-Url", cb.URL)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, body)
	id := resp.Header.Get("X-Invocation-Id")
	require.NotEmpty(t, id)

	select {
	case rec := <-callbacks:
		assert.Equal(t, id, rec.ID)
		assert.Equal(t, trigger.StatusSucceeded, rec.Status)
		require.Len(t, rec.Outputs, 1)
		assert.Equal(t, "HELLO", string(rec.Outputs[0].Payload))
	case <-ctx.Done():
		t.Fatal("the callback did not arrive")
	}

	getRecord := func(base string) (trigger.Invocation, int) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/invocations/"+id, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer func() { _ = resp.Body.Close() }() // a response body: closing it only releases the connection
		var rec trigger.Invocation
		_ = json.NewDecoder(resp.Body).Decode(&rec) // a 404 body is an error document
		return rec, resp.StatusCode
	}
	require.Eventually(t, func() bool {
		rec, code := getRecord(urlB)
		return code == http.StatusOK && rec.Status == trigger.StatusSucceeded
	}, time.Minute, 100*time.Millisecond, "the second instance serves the record")

	stopA()
	urlA2, _ := serveTriggerWithStore(t, fns, storeTopic)
	require.Eventually(t, func() bool {
		rec, code := getRecord(urlA2)
		return code == http.StatusOK && rec.Status == trigger.StatusSucceeded
	}, time.Minute, 100*time.Millisecond, "a restarted instance still serves the record")
}
