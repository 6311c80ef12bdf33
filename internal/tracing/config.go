package tracing

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Protocols of the OTLP exporter.
const (
	ProtocolHTTP = "http/protobuf"
	ProtocolGRPC = "grpc"
)

// Config is what the OpenTelemetry variables ask of fnhost's tracing. Build it with FromEnv.
type Config struct {
	// Enabled is true when an OTLP endpoint is set, OTEL_SDK_DISABLED is not true and
	// OTEL_TRACES_EXPORTER is not none. When false, New returns no TracerProvider.
	Enabled bool
	// Protocol is ProtocolHTTP (the default) or ProtocolGRPC, from
	// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL.
	Protocol string
	// Endpoint is the full URL spans are exported to: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as
	// given, else OTEL_EXPORTER_OTLP_ENDPOINT with /v1/traces appended (http/protobuf) or as
	// given (grpc). An http scheme means no TLS.
	Endpoint string
	// Sampler is OTEL_TRACES_SAMPLER: always_on, always_off, traceidratio,
	// parentbased_always_on (the default), parentbased_always_off or parentbased_traceidratio.
	Sampler string
	// SamplerRatio is OTEL_TRACES_SAMPLER_ARG for the ratio samplers, in [0, 1]. Default 1.
	SamplerRatio float64
	// ServiceName is OTEL_SERVICE_NAME, else service.name of OTEL_RESOURCE_ATTRIBUTES; empty
	// when neither sets it (New then uses DefaultServiceName).
	ServiceName string
	// DefaultServiceName is the service name when the variables give none. Default "fnhost";
	// main sets the command's (fnhost-trigger, fnhost-runtime, fnhost-dev).
	DefaultServiceName string
	// Attributes are the resource attributes of OTEL_RESOURCE_ATTRIBUTES (key=value pairs,
	// comma-separated, values percent-decoded).
	Attributes map[string]string
	// ShutdownTimeout bounds the flush of the spans still buffered at exit. Default 5s.
	ShutdownTimeout time.Duration
}

// Samplers FromEnv accepts.
var samplers = []string{"always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"}

func (c *Config) setDefaults() {
	if c.Protocol == "" {
		c.Protocol = ProtocolHTTP
	}
	if c.Sampler == "" {
		c.Sampler = "parentbased_always_on"
		c.SamplerRatio = 1
	}
	if c.DefaultServiceName == "" {
		c.DefaultServiceName = "fnhost"
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 5 * time.Second
	}
}

// Validate reports a configuration New cannot build.
func (c *Config) Validate() error {
	var errs []error
	if c.Protocol != ProtocolHTTP && c.Protocol != ProtocolGRPC {
		errs = append(errs, fmt.Errorf("tracing: protocol %q: want %s or %s", c.Protocol, ProtocolHTTP, ProtocolGRPC))
	}
	if !slices.Contains(samplers, c.Sampler) {
		errs = append(errs, fmt.Errorf("tracing: sampler %q: want one of %s", c.Sampler, strings.Join(samplers, ", ")))
	}
	if c.SamplerRatio < 0 || c.SamplerRatio > 1 {
		errs = append(errs, fmt.Errorf("tracing: sampler ratio %v: want a number in [0, 1]", c.SamplerRatio))
	}
	if c.Enabled {
		if err := checkEndpoint(c.Endpoint); err != nil {
			errs = append(errs, fmt.Errorf("tracing: endpoint: %w", err))
		}
	}
	return errors.Join(errs...)
}

// FromEnv reads the OpenTelemetry variables of env (KEY=VALUE entries). Every malformed or
// unsupported value is an error naming its variable; none is ignored.
func FromEnv(env []string) (Config, error) {
	vars := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "OTEL_") {
			vars[k] = v
		}
	}
	var c Config
	var errs []error
	bad := func(k, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s=%q: %s", k, vars[k], fmt.Sprintf(format, args...)))
	}

	disabled := false
	if v := strings.TrimSpace(vars["OTEL_SDK_DISABLED"]); v != "" {
		switch strings.ToLower(v) {
		case "true":
			disabled = true
		case "false":
		default:
			bad("OTEL_SDK_DISABLED", "want true or false")
		}
	}
	exporter := "otlp"
	if v := strings.TrimSpace(vars["OTEL_TRACES_EXPORTER"]); v != "" {
		switch strings.ToLower(v) {
		case "otlp":
		case "none":
			exporter = "none"
		default:
			bad("OTEL_TRACES_EXPORTER", "fnhost exports traces with otlp (or none)")
		}
	}

	protoKey := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	if vars[protoKey] == "" {
		protoKey = "OTEL_EXPORTER_OTLP_PROTOCOL"
	}
	switch p := strings.TrimSpace(vars[protoKey]); p {
	case "", ProtocolHTTP:
		c.Protocol = ProtocolHTTP
	case ProtocolGRPC:
		c.Protocol = ProtocolGRPC
	case "http/json":
		bad(protoKey, "http/json is not supported by OpenTelemetry Go; use %s or %s", ProtocolHTTP, ProtocolGRPC)
	default:
		bad(protoKey, "want %s or %s", ProtocolHTTP, ProtocolGRPC)
	}

	if v := strings.TrimSpace(vars["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]); v != "" {
		if err := checkEndpoint(v); err != nil {
			bad("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "%v", err)
		}
		c.Endpoint = v
	} else if v := strings.TrimSpace(vars["OTEL_EXPORTER_OTLP_ENDPOINT"]); v != "" {
		if err := checkEndpoint(v); err != nil {
			bad("OTEL_EXPORTER_OTLP_ENDPOINT", "%v", err)
		}
		c.Endpoint = v
		if c.Protocol == ProtocolHTTP {
			c.Endpoint = strings.TrimRight(v, "/") + "/v1/traces"
		}
	}
	c.Enabled = c.Endpoint != "" && !disabled && exporter == "otlp"

	c.Sampler, c.SamplerRatio = "parentbased_always_on", 1
	if v := strings.TrimSpace(vars["OTEL_TRACES_SAMPLER"]); v != "" {
		if slices.Contains(samplers, strings.ToLower(v)) {
			c.Sampler = strings.ToLower(v)
		} else {
			bad("OTEL_TRACES_SAMPLER", "want one of %s", strings.Join(samplers, ", "))
		}
	}
	if v := strings.TrimSpace(vars["OTEL_TRACES_SAMPLER_ARG"]); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		switch {
		case err != nil || r < 0 || r > 1:
			bad("OTEL_TRACES_SAMPLER_ARG", "want a sampling ratio in [0, 1]")
		case !strings.HasSuffix(c.Sampler, "traceidratio"):
			bad("OTEL_TRACES_SAMPLER_ARG", "only the traceidratio samplers take an argument (OTEL_TRACES_SAMPLER=%s)", c.Sampler)
		default:
			c.SamplerRatio = r
		}
	}

	if v := strings.TrimSpace(vars["OTEL_RESOURCE_ATTRIBUTES"]); v != "" {
		attrs, err := parseAttributes(v)
		if err != nil {
			bad("OTEL_RESOURCE_ATTRIBUTES", "%v", err)
		}
		c.Attributes = attrs
		c.ServiceName = attrs["service.name"]
	}
	if v := strings.TrimSpace(vars["OTEL_SERVICE_NAME"]); v != "" {
		c.ServiceName = v
	}
	return c, errors.Join(errs...)
}

// checkEndpoint accepts an absolute http or https URL with a host.
func checkEndpoint(v string) error {
	u, err := url.Parse(v)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("want an absolute http or https URL such as http://127.0.0.1:4318")
	}
	return nil
}

// parseAttributes parses OTEL_RESOURCE_ATTRIBUTES: key=value pairs separated by commas, with
// percent-encoded values.
func parseAttributes(v string) (map[string]string, error) {
	attrs := map[string]string{}
	for pair := range strings.SplitSeq(v, ",") {
		k, val, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", strings.TrimSpace(pair))
		}
		dec, err := url.PathUnescape(strings.TrimSpace(val))
		if err != nil {
			return nil, fmt.Errorf("value of %s: %w", k, err)
		}
		attrs[k] = dec
	}
	return attrs, nil
}
