package trigger

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fnhost/fnhost/functions/pf/invocation"
)

// HTTP headers of the API.
const (
	headerKey          = "X-Message-Key"
	headerPropPrefix   = "X-Message-Property-"
	headerTimeout      = "X-Timeout"
	headerCallbackURL  = "X-Callback-Url"
	headerInvocationID = "X-Invocation-Id"
	headerOutputCount  = "X-Output-Count"
	headerSignature    = "X-Fnhost-Signature"
	headerAttempt      = "X-Fnhost-Attempt"
	headerLastEventID  = "Last-Event-Id" // the SSE spec writes Last-Event-ID
	// The W3C names are lower case. http.Header keys are canonical, and giving every name so
	// spares the canonicalization (an allocation) on every lookup.
	headerTraceParent = "Traceparent"
	headerTraceState  = "Tracestate"
)

// Limits of the property headers; a request beyond them is a 400, not a silent truncation.
const (
	maxProperties    = 64
	maxPropertyValue = 4096
	maxTraceState    = 512
)

// mode is how the caller wants the outputs.
type mode int

const (
	modeSync mode = iota
	modeSSE
	modeNDJSON
	modeAsync
)

const (
	mediaSSE    = "text/event-stream"
	mediaNDJSON = "application/x-ndjson"
)

// parseTimeout parses X-Timeout: a Go duration ("5s", "1m30s") or an integer number of
// milliseconds ("5000"). The result is positive and capped at maxTimeout; empty gives def.
func parseTimeout(v string, def, maxTimeout time.Duration) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return def, nil
	}
	var d time.Duration
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		if ms <= 0 {
			return 0, fmt.Errorf("X-Timeout %q must be positive", v)
		}
		if ms > int64(maxTimeout/time.Millisecond) {
			return maxTimeout, nil
		}
		d = time.Duration(ms) * time.Millisecond
	} else {
		var perr error
		d, perr = time.ParseDuration(v)
		if perr != nil {
			return 0, fmt.Errorf("X-Timeout %q is neither a Go duration (5s) nor integer milliseconds", v)
		}
		if d <= 0 {
			return 0, fmt.Errorf("X-Timeout %q must be positive", v)
		}
	}
	return min(d, maxTimeout), nil
}

// reservedProperty reports property names the trigger or Pulsar Functions set themselves; a
// caller may not spoof them.
func reservedProperty(name string) bool {
	switch name {
	case invocation.ContentType, invocation.TraceParent, invocation.TraceState:
		return true
	}
	return strings.HasPrefix(name, "fnhost-") || strings.HasPrefix(name, "__pfn_")
}

// parseProperties collects X-Message-Property-<name> headers. Names are lower-cased: HTTP
// header names are case-insensitive (HTTP/2 sends them in lower case), so the case a client
// typed cannot be kept. A name must be given once, must not be reserved, and values must be
// UTF-8 without control characters. The map is nil when there are none.
func parseProperties(h http.Header) (map[string]string, error) {
	var props map[string]string
	for k, vs := range h {
		if len(k) < len(headerPropPrefix) || !strings.EqualFold(k[:len(headerPropPrefix)], headerPropPrefix) {
			continue
		}
		name := strings.ToLower(k[len(headerPropPrefix):])
		switch {
		case name == "":
			return nil, fmt.Errorf("header %s has an empty property name", k)
		case !validToken(name):
			return nil, fmt.Errorf("header %s: property name %q has characters outside the HTTP token set", k, name)
		case reservedProperty(name):
			return nil, fmt.Errorf("header %s: property name %q is reserved", k, name)
		case len(vs) != 1:
			return nil, fmt.Errorf("header %s given %d times; give a property once", k, len(vs))
		case len(vs[0]) > maxPropertyValue:
			return nil, fmt.Errorf("header %s: value is longer than %d bytes", k, maxPropertyValue)
		case !utf8.ValidString(vs[0]) || hasControl(vs[0]):
			return nil, fmt.Errorf("header %s: value must be UTF-8 without control characters", k)
		}
		if _, dup := props[name]; dup {
			return nil, fmt.Errorf("header %s: property %q given more than once", k, name)
		}
		if props == nil {
			props = make(map[string]string)
		}
		props[name] = vs[0]
		if len(props) > maxProperties {
			return nil, fmt.Errorf("more than %d X-Message-Property headers", maxProperties)
		}
	}
	return props, nil
}

// parseTraceParent checks a W3C traceparent (version-traceid-parentid-flags). Version ff and
// all-zero ids are invalid; a future version may carry more fields after a dash.
func parseTraceParent(v string) error {
	if v == "" {
		return nil
	}
	bad := errors.New("traceparent must be 2-hex version, 32-hex trace id, 16-hex parent id and 2-hex flags, joined by dashes (W3C Trace Context)")
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return bad
	}
	version, traceID, parentID, flags := v[0:2], v[3:35], v[36:52], v[53:55]
	for _, f := range []string{version, traceID, parentID, flags} {
		if !lowerHex(f) {
			return bad
		}
	}
	switch {
	case version == "ff":
		return errors.New("traceparent version ff is invalid")
	case version == "00" && len(v) != 55:
		return errors.New("traceparent version 00 must be exactly 55 characters")
	case len(v) > 55 && v[55] != '-':
		return bad
	case strings.Trim(traceID, "0") == "":
		return errors.New("traceparent trace id is all zeros")
	case strings.Trim(parentID, "0") == "":
		return errors.New("traceparent parent id is all zeros")
	}
	return nil
}

// cleanTraceState returns tracestate if it can be passed on, else "" (W3C: a vendor may drop
// an invalid tracestate; it does not fail the request). It is dropped without a traceparent.
func cleanTraceState(traceParent, v string) string {
	if traceParent == "" || len(v) > maxTraceState || !printableASCII(v) {
		return ""
	}
	return v
}

// parseLastEventID parses Last-Event-ID: the seq of the last output the caller has, a
// non-negative decimal; empty means none (-1).
func parseLastEventID(v string) (int64, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return -1, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || (len(v) > 1 && v[0] == '0') || v[0] == '+' {
		return 0, fmt.Errorf("Last-Event-ID %q must be the non-negative decimal seq of an output", v)
	}
	return n, nil
}

// parseCallbackURL checks X-Callback-Url: an absolute http or https URL with a host.
func parseCallbackURL(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	u, err := url.Parse(v)
	if err != nil {
		return "", fmt.Errorf("X-Callback-Url %q is not a URL: %w", v, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return "", fmt.Errorf("X-Callback-Url %q must be an absolute http or https URL without user info", v)
	}
	return u.String(), nil
}

// preferAsync reports whether the Prefer headers (RFC 7240) ask for respond-async.
func preferAsync(values []string) bool {
	for _, v := range values {
		for pref := range strings.SplitSeq(v, ",") {
			tok, _, _ := strings.Cut(pref, ";")
			tok, _, _ = strings.Cut(tok, "=")
			if strings.EqualFold(strings.TrimSpace(tok), "respond-async") {
				return true
			}
		}
	}
	return false
}

// negotiate picks the streaming format from Accept: the supported stream type with the
// highest q (SSE wins a tie); anything else is a synchronous response.
func negotiate(accept string) mode {
	best, bestQ := modeSync, 0.0
	for part := range strings.SplitSeq(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if qs, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(qs, 64); err == nil {
				q = f
			}
		}
		var m mode
		switch mt {
		case mediaSSE:
			m = modeSSE
		case mediaNDJSON:
			m = modeNDJSON
		default:
			continue
		}
		if q > bestQ || (q == bestQ && q > 0 && m == modeSSE) {
			best, bestQ = m, q
		}
	}
	return best
}

// parseContentType checks Content-Type; empty is allowed.
func parseContentType(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	if typ, sub, ok := strings.Cut(v, "/"); ok && validToken(typ) && validToken(sub) {
		return v, nil // type/subtype without parameters: what ParseMediaType accepts, without its map
	}
	if _, _, err := mime.ParseMediaType(v); err != nil {
		return "", fmt.Errorf("Content-Type %q: %w", v, err)
	}
	return v, nil
}

// validName checks a tenant, namespace, function or topic name with Pulsar's rules.
func validName(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '=' || c == ':') {
			return false
		}
	}
	return true
}

func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return s != ""
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return true
		}
	}
	return false
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether v can be sent as a response header value.
func validHeaderValue(v string) bool { return !hasControl(v) }
