//go:build integration

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/internal/manifest"
	"github.com/fnhost/fnhost/internal/pulsartest"
	"github.com/fnhost/fnhost/runtime/host"
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
	h, err := host.New(ctx, host.Config{Functions: fns, PulsarURL: pulsartest.ServiceURL(), Logger: pulsartest.Logger(t),
		BuildDir: filepath.Join(t.TempDir(), "build")})
	require.NoError(t, err)
	hctx, stopHost := context.WithCancel(context.Background())
	hostDone := make(chan error, 1)
	go func() { hostDone <- h.Run(hctx) }()
	t.Cleanup(func() {
		stopHost()
		assert.NoError(t, <-hostDone)
	})

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
					resp.Body.Close()
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
