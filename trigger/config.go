package trigger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Config configures a Server. Zero values take the defaults named on each field; New calls
// setDefaults and then Validate.
type Config struct {
	// Addr is the listen address of Run. Default "127.0.0.1:8088". A non-loopback address
	// needs authentication (Auth), or Auth.Disabled.
	Addr string
	// Auth configures bearer-token authentication and per-route scopes; see AuthConfig.
	// Default: off, which is allowed on a loopback Addr only.
	Auth AuthConfig

	// Invoker runs the functions. Required.
	Invoker Invoker
	// Publisher backs POST /v1/topics/…; nil answers 501 not_supported there.
	Publisher Publisher
	// Store keeps async invocation records. Default: an in-memory store bounded by
	// RecordLimit and RecordTTL.
	Store InvocationStore
	// Logger receives the service's logs. Default: a logger that discards everything.
	Logger *slog.Logger
	// Ready, when set, is asked by /readyz; an error makes the service not ready (503).
	Ready func(ctx context.Context) error
	// Client sends callbacks. Default: a new http.Client (per-attempt timeouts come from
	// CallbackTimeout, not from the client). Its Transport, when nil or an *http.Transport, is
	// cloned to connect through the callback policy (see CallbackAllow) and without a proxy;
	// any other RoundTripper gets only the policy's request-time check.
	Client *http.Client
	// TracerProvider, when set, traces every request with a SERVER span and makes an
	// invocation's trace context (Request.TraceParent) that span's. Default nil: no tracing,
	// and the caller's traceparent passes through unchanged.
	TracerProvider trace.TracerProvider

	// MaxBodyBytes limits a request body (413 above it). Default 6 MiB.
	MaxBodyBytes int64
	// MaxOutputBytes limits the total output payload bytes kept for a synchronous response or an
	// async record; above it the invocation is stopped and fails with output_too_large.
	// Streams are not limited by it. Default 6 MiB.
	MaxOutputBytes int64
	// DefaultTimeout is the invocation deadline when X-Timeout is absent. Default 30s.
	DefaultTimeout time.Duration
	// MaxTimeout caps X-Timeout (a larger value is lowered to it). Default 5m.
	MaxTimeout time.Duration
	// MaxConcurrent limits synchronous and streaming invocations in flight; over it the
	// trigger answers 429 with Retry-After. Default 1024.
	MaxConcurrent int
	// MaxAsync limits async invocations running or waiting to deliver their callback; over
	// it 429. Default 1024.
	MaxAsync int
	// RetryAfter is the Retry-After sent with 429 and 503. Default 1s (sent in whole seconds,
	// at least 1).
	RetryAfter time.Duration

	// RecordLimit and RecordTTL bound the default in-memory InvocationStore: at most
	// RecordLimit records, each kept RecordTTL after its last update. Defaults 10000 and 1h.
	RecordLimit int
	RecordTTL   time.Duration

	// ReplayInvocations, ReplayEvents, ReplayBytes and ReplayTTL bound the in-memory replay
	// buffer behind Last-Event-ID resume: at most ReplayInvocations recent streamed or async
	// invocations, each keeping its last ReplayEvents outputs and at most ReplayBytes payload
	// bytes, for ReplayTTL after it finished. Defaults 1000, 1000, 1 MiB, 10m.
	ReplayInvocations int
	ReplayEvents      int
	ReplayBytes       int64
	ReplayTTL         time.Duration
	// SSEKeepAlive is the interval of comment lines on GET /v1/invocations/{id}/events while
	// it waits for live events, so proxies keep the connection. Default 15s.
	SSEKeepAlive time.Duration

	// CallbackSecret, when set, signs callbacks: X-Fnhost-Signature: sha256=<hex HMAC-SHA256
	// of the body>.
	CallbackSecret []byte
	// CallbackAllow opens callback destinations that the policy against server-side request
	// forgery refuses by default. By default X-Callback-Url may target only public unicast
	// addresses, plus loopback while the trigger listens on loopback (local development); never
	// private, link-local (cloud metadata), shared, multicast, unspecified or reserved ones.
	// Each entry is an IP (10.1.2.3), a CIDR (10.1.0.0/16), a host name (hooks.internal, allowed
	// whatever it resolves to) or a wildcard (*.corp.example, the names below corp.example).
	// The policy is checked when the request comes (400 invalid_callback_url) and again on the
	// address each callback connects to (so DNS rebinding cannot bypass it). Default: none.
	CallbackAllow []string
	// CallbackAttempts is the number of delivery attempts of a callback. Default 5.
	CallbackAttempts int
	// CallbackTimeout bounds one attempt. Default 10s.
	CallbackTimeout time.Duration
	// CallbackBackoff is the wait before the second attempt; it doubles per attempt up to
	// CallbackMaxBackoff, with jitter. Defaults 500ms and 30s.
	CallbackBackoff    time.Duration
	CallbackMaxBackoff time.Duration

	// ReadHeaderTimeout and ReadTimeout are the http.Server's. Defaults 10s and 60s. There is
	// no write timeout: streams last as long as their invocation (bounded by MaxTimeout).
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	// IdleTimeout closes idle keep-alive connections. Default 2m.
	IdleTimeout time.Duration
	// ShutdownTimeout bounds Run's graceful shutdown: in-flight requests, then async
	// invocations. Default 30s.
	ShutdownTimeout time.Duration
}

func (c *Config) setDefaults() {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8088"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Client == nil {
		c.Client = &http.Client{}
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 6 << 20
	}
	if c.MaxOutputBytes == 0 {
		c.MaxOutputBytes = 6 << 20
	}
	def(&c.DefaultTimeout, 30*time.Second)
	def(&c.MaxTimeout, 5*time.Minute)
	defInt(&c.MaxConcurrent, 1024)
	defInt(&c.MaxAsync, 1024)
	def(&c.RetryAfter, time.Second)
	defInt(&c.RecordLimit, 10000)
	def(&c.RecordTTL, time.Hour)
	defInt(&c.ReplayInvocations, 1000)
	defInt(&c.ReplayEvents, 1000)
	if c.ReplayBytes == 0 {
		c.ReplayBytes = 1 << 20
	}
	def(&c.ReplayTTL, 10*time.Minute)
	def(&c.SSEKeepAlive, 15*time.Second)
	defInt(&c.CallbackAttempts, 5)
	def(&c.CallbackTimeout, 10*time.Second)
	def(&c.CallbackBackoff, 500*time.Millisecond)
	def(&c.CallbackMaxBackoff, 30*time.Second)
	def(&c.ReadHeaderTimeout, 10*time.Second)
	def(&c.ReadTimeout, 60*time.Second)
	def(&c.IdleTimeout, 2*time.Minute)
	def(&c.ShutdownTimeout, 30*time.Second)
	c.Auth.setDefaults()
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	var errs []error
	if c.Invoker == nil {
		errs = append(errs, errors.New("Invoker is required"))
	}
	positive := map[string]int64{
		"MaxBodyBytes": c.MaxBodyBytes, "MaxOutputBytes": c.MaxOutputBytes,
		"MaxConcurrent": int64(c.MaxConcurrent), "MaxAsync": int64(c.MaxAsync),
		"RecordLimit": int64(c.RecordLimit), "ReplayInvocations": int64(c.ReplayInvocations),
		"ReplayEvents": int64(c.ReplayEvents), "ReplayBytes": c.ReplayBytes,
		"CallbackAttempts": int64(c.CallbackAttempts),
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"DefaultTimeout", c.DefaultTimeout}, {"MaxTimeout", c.MaxTimeout},
		{"RetryAfter", c.RetryAfter}, {"RecordTTL", c.RecordTTL}, {"ReplayTTL", c.ReplayTTL},
		{"SSEKeepAlive", c.SSEKeepAlive}, {"CallbackTimeout", c.CallbackTimeout},
		{"CallbackBackoff", c.CallbackBackoff}, {"CallbackMaxBackoff", c.CallbackMaxBackoff},
		{"ReadHeaderTimeout", c.ReadHeaderTimeout}, {"ReadTimeout", c.ReadTimeout},
		{"IdleTimeout", c.IdleTimeout}, {"ShutdownTimeout", c.ShutdownTimeout},
	} {
		positive[d.name] = int64(d.v)
	}
	for _, name := range slices.Sorted(maps.Keys(positive)) {
		if positive[name] < 0 {
			errs = append(errs, fmt.Errorf("%s is negative (%d)", name, positive[name]))
		}
	}
	if c.DefaultTimeout > c.MaxTimeout {
		errs = append(errs, fmt.Errorf("DefaultTimeout %s exceeds MaxTimeout %s", c.DefaultTimeout, c.MaxTimeout))
	}
	if c.CallbackBackoff > c.CallbackMaxBackoff {
		errs = append(errs, fmt.Errorf("CallbackBackoff %s exceeds CallbackMaxBackoff %s", c.CallbackBackoff, c.CallbackMaxBackoff))
	}
	_, _, allowErrs := parseCallbackAllow(c.CallbackAllow)
	errs = append(errs, allowErrs...)
	errs = append(errs, c.Auth.validate(c.Addr)...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("trigger: invalid config: %w", err)
	}
	return nil
}
