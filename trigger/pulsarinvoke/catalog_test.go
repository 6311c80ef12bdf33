package pulsarinvoke

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/internal/manifest"
	"github.com/fnhost/fnhost/trigger"
)

func TestCatalog(t *testing.T) {
	t.Parallel()
	var gets atomic.Int32
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		switch r.URL.Path {
		case "/admin/v3/functions/public/default":
			_, _ = w.Write([]byte(`["java-fn","echo"]`))
		case "/admin/v3/functions/public/default/java-fn":
			_, _ = w.Write([]byte(`{"tenant":"public","namespace":"default","name":"java-fn","runtime":"JAVA","parallelism":2,"timeoutMs":5000,
				"inputSpecs":{"persistent://public/default/b-in":{},"persistent://public/default/a-in":{},"p.*":{"regexPattern":true}},"output":"java-out"}`))
		case "/admin/v3/functions/public/default/echo":
			_, _ = w.Write([]byte(`{"name":"echo","inputs":["echo-in"]}`))
		default:
			http.Error(w, `{"reason":"Function doesn't exist"}`, http.StatusNotFound)
		}
	}))
	t.Cleanup(admin.Close)
	fn, err := manifest.Parse("echo.yaml", []byte("name: echo\ngo: functions/echo\ninputs: [echo-in]\noutput: echo-out\n"))
	require.NoError(t, err)
	cfg := Config{AdminURL: admin.URL, Functions: []*manifest.Function{fn}}
	cfg.setDefaults()
	c := newCatalog(&cfg)
	ctx := context.Background()

	tg, err := c.lookup(ctx, trigger.Function{Tenant: "public", Namespace: "default", Name: "java-fn"})
	require.NoError(t, err)
	assert.Equal(t, "persistent://public/default/a-in", tg.input)
	assert.Equal(t, []string{"persistent://public/default/a-in", "persistent://public/default/b-in"}, tg.info.Inputs)
	assert.Equal(t, "persistent://public/default/java-out", tg.info.Output)
	assert.Equal(t, 5*time.Second, tg.info.Timeout)
	assert.False(t, tg.manifest)
	n := gets.Load()
	_, err = c.lookup(ctx, trigger.Function{Tenant: "public", Namespace: "default", Name: "java-fn"})
	require.NoError(t, err)
	assert.Equal(t, n, gets.Load(), "cached")

	_, err = c.lookup(ctx, trigger.Function{Tenant: "public", Namespace: "default", Name: "nope"})
	assert.ErrorIs(t, err, trigger.ErrFunctionNotFound)

	tg, err = c.lookup(ctx, trigger.Function{Tenant: "public", Namespace: "default", Name: "echo"})
	require.NoError(t, err)
	assert.True(t, tg.manifest, "the manifest wins")

	fis, err := c.functions(ctx)
	require.NoError(t, err)
	require.Len(t, fis, 2)
	assert.Equal(t, "echo", fis[0].Name)
	assert.Equal(t, "java-fn", fis[1].Name)
	assert.Equal(t, "pulsar", fis[1].Runtime)

	admin.Close()
	cfg2 := Config{AdminURL: admin.URL}
	cfg2.setDefaults()
	_, err = newCatalog(&cfg2).lookup(ctx, trigger.Function{Tenant: "public", Namespace: "default", Name: "x"})
	assert.ErrorIs(t, err, trigger.ErrUnavailable, "admin API down")
}
