package pulsarinvoke

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"go.opentelemetry.io/otel/trace"

	"github.com/fnhost/fnhost/internal/manifest"
)

// Fallback says whether the invoker also watches a function's output topic for outputs that
// answer its request (DESIGN §3), for functions not built with fnhost's SDK, which never write
// to the reply-to topic.
type Fallback string

// The fallback modes.
const (
	// FallbackAuto watches the output topic of functions found through the admin API (they may
	// be Java, Python or upstream Go functions) and not of functions known from manifests
	// (fnhost builds those with its SDK, which replies).
	FallbackAuto Fallback = ""
	// FallbackOn always watches the output topic (when the function has one).
	FallbackOn Fallback = "on"
	// FallbackOff never does: only reply-to replies count.
	FallbackOff Fallback = "off"
)

// Config configures an Invoker. Zero values take the defaults named on each field; New calls
// setDefaults and then Validate.
type Config struct {
	// Client is the Pulsar client to use; the Invoker does not close it. When nil, New creates
	// one for ServiceURL (and closes it in Close).
	Client pulsar.Client
	// ServiceURL is the broker URL when Client is nil. Default "pulsar://127.0.0.1:6650".
	ServiceURL string
	// AdminURL is the Pulsar admin REST URL (http://127.0.0.1:8080): functions not in
	// Functions are looked up there (/admin/v3/functions/…). Empty: only Functions are known.
	AdminURL string
	// HTTPClient calls the admin API. Default: a client with a 10 s timeout.
	HTTPClient *http.Client
	// Namespaces whose deployed functions Functions lists (tenant/namespace). Default
	// ["public/default"].
	Namespaces []string
	// Functions are the functions known from manifests. They take precedence over the admin API.
	Functions []*manifest.Function
	// CacheTTL is how long a function's configuration read from the admin API is kept (also
	// the list of deployed functions). A function the admin API does not know is remembered
	// as unknown for a tenth of it. Default 30s.
	CacheTTL time.Duration

	// ReplyTopic is where functions send their replies; one per trigger instance, so that
	// replicas scale out. Default persistent://public/default/fnhost-replies-<random>: a
	// persistent topic, so that replies survive a reconnect of this consumer or a broker
	// restart (a non-persistent topic drops messages whenever the consumer has no permits, as
	// under a burst of streamed outputs). With the default, Close unsubscribes, so the broker
	// deletes the topic once it is inactive; a configured topic keeps its subscription.
	ReplyTopic string
	// Subscription is the reply topic's subscription name. Default "fnhost-trigger".
	Subscription string

	// MaxPending bounds the invocations waiting for replies; over it Invoke returns
	// trigger.ErrOverloaded. Default 4096.
	MaxPending int
	// MaxBufferedBytes bounds the output bytes one invocation may hold while its caller has not
	// taken them (out of order, or a slow reader); over it the invocation fails. Default 16 MiB.
	MaxBufferedBytes int64
	// SendTimeout bounds the broker's receipt of a request; a publish that fails (or times
	// out) makes Invoke return trigger.ErrUnavailable, and until a later publish succeeds the
	// invoker answers ErrUnavailable at once, letting one probe through every ProbeInterval.
	// Defaults 3s and 1s.
	SendTimeout   time.Duration
	ProbeInterval time.Duration
	// BatchingDelay is the producers' batching delay, for messages of the topics route, which
	// nobody waits on. Default 1ms. An invocation's input does not wait for it: it is sent at
	// once, in its own batch (with any topics-route messages already queued).
	BatchingDelay time.Duration

	// Fallback is the default fallback mode; FallbackFor overrides it per function
	// (tenant/namespace/name). Default FallbackAuto.
	Fallback    Fallback
	FallbackFor map[string]Fallback
	// FallbackIdle is how long an output-topic reader of the fallback stays open with no call
	// waiting on it; then it is closed, and opened again (from the topic's end) by the next
	// call that needs it. Default 5m.
	FallbackIdle time.Duration

	// Logger receives the invoker's logs. Default: discard.
	Logger *slog.Logger
	// TracerProvider, when set, traces each publish with a PRODUCER span whose context the
	// message carries (traceparent, tracestate). Default nil: the request's trace context is
	// sent as it is.
	TracerProvider trace.TracerProvider

	ownReplyTopic bool // the reply topic is this instance's alone (the default)
}

func (c *Config) setDefaults() {
	if c.ServiceURL == "" && c.Client == nil {
		c.ServiceURL = "pulsar://127.0.0.1:6650"
	}
	if len(c.Namespaces) == 0 {
		c.Namespaces = []string{"public/default"}
	}
	if c.CacheTTL == 0 {
		c.CacheTTL = 30 * time.Second
	}
	if c.ReplyTopic == "" {
		var b [8]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
		c.ReplyTopic = "persistent://public/default/fnhost-replies-" + hex.EncodeToString(b[:])
		c.ownReplyTopic = true
	}
	if c.Subscription == "" {
		c.Subscription = "fnhost-trigger"
	}
	if c.MaxPending == 0 {
		c.MaxPending = 4096
	}
	if c.MaxBufferedBytes == 0 {
		c.MaxBufferedBytes = 16 << 20
	}
	if c.SendTimeout == 0 {
		c.SendTimeout = 3 * time.Second
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = time.Second
	}
	if c.BatchingDelay == 0 {
		c.BatchingDelay = time.Millisecond
	}
	if c.FallbackIdle == 0 {
		c.FallbackIdle = 5 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	var errs []error
	if c.MaxPending < 0 {
		errs = append(errs, fmt.Errorf("MaxPending is negative (%d)", c.MaxPending))
	}
	if c.MaxBufferedBytes < 0 {
		errs = append(errs, fmt.Errorf("MaxBufferedBytes is negative (%d)", c.MaxBufferedBytes))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"CacheTTL", c.CacheTTL}, {"SendTimeout", c.SendTimeout}, {"ProbeInterval", c.ProbeInterval}, {"BatchingDelay", c.BatchingDelay}, {"FallbackIdle", c.FallbackIdle}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s is negative (%s)", d.name, d.v))
		}
	}
	if !strings.Contains(c.ReplyTopic, "://") {
		errs = append(errs, fmt.Errorf("ReplyTopic %q: want a full topic name, persistent://tenant/namespace/topic", c.ReplyTopic))
	}
	for _, ns := range c.Namespaces {
		if strings.Count(ns, "/") != 1 {
			errs = append(errs, fmt.Errorf("namespace %q: want tenant/namespace", ns))
		}
	}
	for _, fn := range slices.Sorted(maps.Keys(c.FallbackFor)) {
		if m := c.FallbackFor[fn]; m != FallbackAuto && m != FallbackOn && m != FallbackOff {
			errs = append(errs, fmt.Errorf("FallbackFor[%s]: unknown mode %q", fn, m))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pulsarinvoke: invalid config: %w", err)
	}
	return nil
}
