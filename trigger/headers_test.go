package trigger

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestHeaderNamesAreCanonical(t *testing.T) {
	t.Parallel()
	for _, h := range []string{headerKey, headerPropPrefix, headerTimeout, headerCallbackURL, headerInvocationID,
		headerOutputCount, headerSignature, headerAttempt, headerLastEventID, headerTraceParent, headerTraceState} {
		assert.Equal(t, http.CanonicalHeaderKey(h), h, "a lookup of %s would canonicalize it every time", h)
	}
}

func TestParseTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"", 30 * time.Second, false}, {"5s", 5 * time.Second, false}, {"1500", 1500 * time.Millisecond, false},
		{"1m30s", 90 * time.Second, false}, {"2h", 5 * time.Minute, false}, {"99999999999", 5 * time.Minute, false},
		{"0", 0, true}, {"-1", 0, true}, {"0s", 0, true}, {"soon", 0, true}, {"5 s", 0, true},
	} {
		got, err := parseTimeout(tc.in, 30*time.Second, 5*time.Minute)
		if tc.err {
			assert.Error(t, err, tc.in)
			continue
		}
		assert.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
}

func TestParseTraceParent(t *testing.T) {
	t.Parallel()
	for in, ok := range map[string]bool{
		"": true,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01":        true,
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future": true,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra":  false,
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01":        false,
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01":        false,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01":        false,
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01":        false,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7":           false,
	} {
		assert.Equal(t, ok, parseTraceParent(in) == nil, in)
	}
}

func TestParseProperties(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	h.Set("X-Message-Property-Region", "eu")
	h.Set("X-Other", "x")
	got, err := parseProperties(h)
	assert.NoError(t, err)
	assert.Equal(t, map[string]string{"region": "eu"}, got)

	for name, h := range map[string]http.Header{
		"empty name":           {"X-Message-Property-": {"v"}},
		"twice":                {"X-Message-Property-A": {"1", "2"}},
		"reserved pfn":         {"X-Message-Property-__pfn_input_topic__": {"t"}},
		"reserved":             {"X-Message-Property-Traceparent": {"t"}},
		"not utf-8":            {"X-Message-Property-A": {"\xff"}},
		"newline":              {"X-Message-Property-A": {"a\nb"}},
		"too long":             {"X-Message-Property-A": {strings.Repeat("x", maxPropertyValue+1)}},
		"bad name char":        {"X-Message-Property-a(b)": {"x"}},
		"same name, two cases": {"X-Message-Property-A": {"1"}, "X-Message-Property-a": {"2"}},
	} {
		_, err := parseProperties(h)
		assert.Error(t, err, name)
	}
}

func TestPreferAsync(t *testing.T) {
	t.Parallel()
	assert.True(t, preferAsync([]string{"respond-async"}))
	assert.True(t, preferAsync([]string{"return=minimal, Respond-Async; x=1"}))
	assert.True(t, preferAsync([]string{"wait=10", "respond-async"}))
	assert.False(t, preferAsync([]string{"wait=10"}))
	assert.False(t, preferAsync(nil))
}

// FuzzHeaders checks the header parsers never panic and keep their promises on any input.
// `go test` runs the seed corpus; `go test -fuzz FuzzHeaders ./trigger` explores.
func FuzzHeaders(f *testing.F) {
	for _, seed := range []string{"", "5s", "1500", "-1", "0", "1h", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"ff-", "https://example.com/cb", "ftp://x", "//host/path", "http://user@host/", "12", "007", "+3",
		"respond-async", "text/event-stream;q=0.5, application/x-ndjson", "region", "fnhost-seq", "a\x00b", "\xff"} {
		f.Add(seed, seed)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		const maxTimeout = 5 * time.Minute
		if d, err := parseTimeout(a, time.Second, maxTimeout); err == nil && (d <= 0 || d > maxTimeout) {
			t.Fatalf("parseTimeout(%q) = %s", a, d)
		}
		if err := parseTraceParent(a); err == nil && a != "" && (len(a) < 55 || !lowerHex(a[3:35])) {
			t.Fatalf("parseTraceParent accepted %q", a)
		}
		if n, err := parseLastEventID(a); err == nil && n < -1 {
			t.Fatalf("parseLastEventID(%q) = %d", a, n)
		}
		if u, err := parseCallbackURL(a); err == nil && u != "" {
			p, perr := url.Parse(u)
			if perr != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
				t.Fatalf("parseCallbackURL accepted %q", a)
			}
		}
		if ts := cleanTraceState(a, b); ts != "" && (len(ts) > maxTraceState || !printableASCII(ts)) {
			t.Fatalf("cleanTraceState kept %q", b)
		}
		_ = preferAsync([]string{a, b}) // must not panic; any answer is fine
		_ = negotiate(a)                // idem
		if ct, err := parseContentType(a); err == nil && ct != a {
			t.Fatalf("parseContentType(%q) = %q", a, ct)
		}
		h := http.Header{}
		h[headerPropPrefix+a] = []string{b}
		if props, err := parseProperties(h); err == nil {
			for k, v := range props {
				if k != strings.ToLower(k) || reservedProperty(k) || !validToken(k) || hasControl(v) || v != b {
					t.Fatalf("parseProperties accepted %q: %q", k, v)
				}
			}
		}
	})
}
