package trigger

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeLookup resolves the test names of the callback cases without DNS.
func fakeLookup(_ context.Context, _, host string) ([]netip.Addr, error) {
	switch host {
	case "intranet.test":
		return []netip.Addr{netip.MustParseAddr("10.9.8.7")}, nil
	case "mixed.test":
		return []netip.Addr{netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("172.16.0.1")}, nil
	case "public.test", "localhost":
		return []netip.Addr{netip.MustParseAddr("93.184.216.34")}, nil
	case "timeout.test":
		return nil, &net.DNSError{Err: "i/o timeout", Name: host, IsTimeout: true}
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func TestCallbackPolicyCheck(t *testing.T) {
	t.Parallel()
	nets, hosts, errs := parseCallbackAllow([]string{"10.1.0.0/16", "fd12::7", "hooks.internal", "*.corp.example"})
	require.Empty(t, errs)
	p := &callbackPolicy{nets: nets, hosts: hosts}
	tests := []struct {
		host, ip string
		loopback bool
		refused  string // a part of the refusal; empty: allowed
	}{
		{"", "93.184.216.34", false, ""},
		{"", "2606:4700::1111", false, ""},
		{"", "127.0.0.1", true, ""},
		{"", "::1", true, ""},
		{"", "127.0.0.1", false, "loopback"},
		{"", "::ffff:127.0.0.1", false, "loopback"},
		{"", "169.254.169.254", false, "link-local"},
		{"", "169.254.169.254", true, "link-local"},
		{"", "fe80::1", false, "link-local"},
		{"", "0.0.0.0", true, "unspecified"},
		{"", "::", true, "unspecified"},
		{"", "0.1.2.3", false, "0.0.0.0/8"},
		{"", "10.0.0.1", false, "private"},
		{"", "192.168.0.1", false, "private"},
		{"", "fc00::1", false, "private"},
		{"", "100.64.0.1", false, "shared"},
		{"", "224.0.0.251", false, "multicast"},
		{"", "ff02::1", false, "multicast"},
		{"", "255.255.255.255", false, "broadcast"},
		{"", "2002:a00:1::1", false, "embedding 10.0.0.1"},
		{"", "64:ff9b::7f00:1", false, "embedding 127.0.0.1"},
		{"", "::a00:1", false, "IPv4-compatible"},
		{"", "64:ff9b:1::a00:1", false, "local-use NAT64"},
		{"", "2001::1", false, "Teredo"},
		{"", "2001:db8::1", false, "documentation"},
		{"", "10.1.2.3", false, ""},                     // CIDR allowed
		{"", "fd12::7", false, ""},                      // single address allowed
		{"", "fd12::8", false, "private"},               // its neighbour is not
		{"hooks.internal", "10.50.0.1", false, ""},      // allowed by name
		{"HOOKS.internal.", "10.50.0.1", false, ""},     // names compare case-insensitively
		{"a.b.corp.example", "10.50.0.1", false, ""},    // wildcard
		{"corp.example", "10.50.0.1", false, "private"}, // the wildcard's own domain is not below it
		{"evilcorp.example", "10.50.0.1", false, "private"},
	}
	for _, tc := range tests {
		t.Run(tc.host+"/"+tc.ip, func(t *testing.T) {
			p := &callbackPolicy{nets: p.nets, hosts: p.hosts}
			p.loopback.Store(tc.loopback)
			err := p.check(tc.host, netip.MustParseAddr(tc.ip))
			if tc.refused == "" {
				assert.NoError(t, err)
			} else if assert.Error(t, err) {
				assert.Contains(t, err.Error(), tc.refused)
			}
		})
	}
}

func TestCallbackAllowValidate(t *testing.T) {
	t.Parallel()
	_, err := New(Config{Invoker: newFake(), CallbackAllow: []string{"10.0.0.0/8", "ok.example", "bad host", "*", "10.0.0.0/99"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `CallbackAllow[2] "bad host"`)
	assert.Contains(t, err.Error(), `CallbackAllow[3] "*"`)
	assert.Contains(t, err.Error(), `CallbackAllow[4] "10.0.0.0/99"`)
	assert.NotContains(t, err.Error(), "CallbackAllow[0]")
	assert.NotContains(t, err.Error(), "CallbackAllow[1]")
}

// TestCallbackDialerChecksTheDialledAddress: the callback client refuses at connect time an
// address the policy refuses, whatever the request-time check said, and never connects.
func TestCallbackDialerChecksTheDialledAddress(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	t.Cleanup(hook.Close)
	port := hook.Listener.Addr().(*net.TCPAddr).Port

	post := func(p *callbackPolicy, url string) error {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader("{}"))
		require.NoError(t, err)
		resp, err := p.client.Do(req)
		if err == nil {
			require.NoError(t, resp.Body.Close())
		}
		return err
	}
	policy := func(addr string, allow ...string) *callbackPolicy {
		return newCallbackPolicy(&Config{Addr: addr, CallbackAllow: allow, Client: &http.Client{}}, true)
	}

	off := policy("0.0.0.0:8088") // not on loopback: loopback callbacks refused
	for _, u := range []string{hook.URL, "http://localhost:" + itoa(port)} {
		err := post(off, u)
		require.Error(t, err, u)
		assert.ErrorIs(t, err, errCallbackRefused, u)
		assert.Contains(t, err.Error(), "loopback", u)
	}
	assert.Zero(t, hits.Load(), "a refused callback must not connect")

	authOn := newCallbackPolicy(&Config{Addr: "127.0.0.1:8088", Client: &http.Client{}}, false)
	assert.ErrorIs(t, post(authOn, hook.URL), errCallbackRefused, "on loopback with authentication: not local development")
	assert.Zero(t, hits.Load(), "a refused callback must not connect")

	require.NoError(t, post(policy("127.0.0.1:8088"), hook.URL)) // on loopback: local development
	require.NoError(t, post(policy("0.0.0.0:8088", "127.0.0.0/8"), hook.URL))
	require.NoError(t, post(policy("0.0.0.0:8088", "localhost"), "http://localhost:"+itoa(port)))
	assert.Equal(t, int32(3), hits.Load())
}

// TestCallbackRedirectNotFollowed: a callback answered with a redirect is not re-posted to the
// redirect's target, which the request-time check never saw.
func TestCallbackRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	var followed atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { followed.Add(1) }))
	t.Cleanup(target.Close)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(hook.Close)
	p := newCallbackPolicy(&Config{Addr: "127.0.0.1:8088", Client: &http.Client{}}, true)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook.URL, strings.NewReader("{}"))
	require.NoError(t, err)
	resp, err := p.client.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusTemporaryRedirect, resp.StatusCode)
	assert.Zero(t, followed.Load())
}

// TestCallbackRebindingRefusedAtConnect: a name that resolved to a public address when the
// request came, but to loopback when the callback connects (DNS rebinding), gets no callback.
func TestCallbackRebindingRefusedAtConnect(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	t.Cleanup(hook.Close)
	port := hook.Listener.Addr().(*net.TCPAddr).Port
	logs := &lockedWriter{w: &bytes.Buffer{}}
	s, err := New(Config{
		Invoker: newFake(), Addr: "0.0.0.0:8088", Auth: AuthConfig{Disabled: true},
		CallbackAttempts: 1, Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	require.NoError(t, err)
	s.callback.lookup = fakeLookup // localhost is "public" at request time only

	w := do(s, http.MethodPost, "/function/echo", "x", map[string]string{"X-Callback-Url": "http://localhost:" + itoa(port) + "/hook"})
	require.Equal(t, http.StatusAccepted, w.Code, w.Body.String())
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, s.Shutdown(ctx)) // waits for the invocation and its callback attempt
	assert.Zero(t, hits.Load())
	out := logs.String()
	assert.Contains(t, out, "callback not delivered")
	assert.Contains(t, out, "loopback")
}

// lockedWriter is an io.Writer safe for the server's goroutines and the test.
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}
