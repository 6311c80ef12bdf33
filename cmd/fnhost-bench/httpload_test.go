package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLeanHTTP: the load generator's requests are valid HTTP for net/http's server, its
// connections are reused, and what it cannot or must not read is an error.
func TestLeanHTTP(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/echo":
			if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/octet-stream" || r.URL.RawQuery != "a=1" {
				http.Error(w, "bad request line or headers", http.StatusBadRequest)
				return
			}
			_, _ = w.Write(body)
		case "/close":
			w.Header().Set("Connection", "close")
			_, _ = w.Write(body)
		case "/chunked":
			w.(http.Flusher).Flush() // no Content-Length: the body goes chunked
			_, _ = w.Write(body)
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/fail":
			http.Error(w, "nope", http.StatusBadGateway)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	body := bytes.Repeat([]byte("x"), 100)

	h, err := newLeanHTTP(srv.URL+"/echo?a=1", body, 4)
	require.NoError(t, err)
	defer h.close()
	echo := h.echo(body)
	for range 5 {
		require.NoError(t, echo(ctx))
	}
	assert.EqualValues(t, 1, conns.Load(), "sequential calls share one keep-alive connection")

	closing, err := newLeanHTTP(srv.URL+"/close", body, 4)
	require.NoError(t, err)
	require.NoError(t, closing.echo(body)(ctx))
	require.NoError(t, closing.echo(body)(ctx))
	assert.Empty(t, closing.idle, "a connection the server closes is not kept")

	status, out, err := mustLean(t, srv.URL+"/empty", body).do(ctx)
	require.NoError(t, err)
	assert.Equal(t, http.StatusNoContent, status)
	assert.Empty(t, out)

	err = mustLean(t, srv.URL+"/fail", body).echo(body)(ctx)
	assert.ErrorContains(t, err, "status 502")
	_, _, err = mustLean(t, srv.URL+"/chunked", body).do(ctx)
	assert.ErrorIs(t, err, errChunked)

	_, err = newLeanHTTP("https://example.invalid/", body, 1)
	assert.ErrorContains(t, err, "only http://host:port URLs")
}

func mustLean(t *testing.T, url string, body []byte) *leanHTTP {
	t.Helper()
	h, err := newLeanHTTP(url, body, 1)
	require.NoError(t, err)
	t.Cleanup(h.close)
	return h
}
