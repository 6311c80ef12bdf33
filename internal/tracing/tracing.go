package tracing

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// New builds the TracerProvider cfg asks for: an OTLP exporter behind a batch span processor,
// cfg's sampler and resource. It returns the provider and its shutdown, which flushes the
// buffered spans within cfg.ShutdownTimeout (or ctx's end, if sooner) and stops the exporter;
// call it once at exit. When cfg.Enabled is false it returns a nil provider (components then
// skip tracing) and a shutdown that does nothing.
//
// New does not touch OpenTelemetry's globals: main installs the provider and the W3C
// propagator with Install.
func New(ctx context.Context, cfg Config) (trace.TracerProvider, func(context.Context) error, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	if !cfg.Enabled {
		return nil, func(context.Context) error { return nil }, nil
	}
	var exp sdktrace.SpanExporter
	var err error
	switch cfg.Protocol {
	case ProtocolGRPC:
		exp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(cfg.Endpoint))
	default:
		exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.Endpoint))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: OTLP %s exporter for %s: %w", cfg.Protocol, cfg.Endpoint, err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(sampler(cfg.Sampler, cfg.SamplerRatio)),
		sdktrace.WithResource(newResource(cfg)),
	)
	shutdown := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, cfg.ShutdownTimeout)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("tracing: spans not flushed to %s within %s: %w", cfg.Endpoint, cfg.ShutdownTimeout, err)
			}
			return fmt.Errorf("tracing: flushing spans to %s: %w", cfg.Endpoint, err)
		}
		return nil
	}
	return tp, shutdown, nil
}

// sampler returns the sampler named as OTEL_TRACES_SAMPLER names them (Validate checked it).
func sampler(name string, ratio float64) sdktrace.Sampler {
	switch name {
	case "always_on":
		return sdktrace.AlwaysSample()
	case "always_off":
		return sdktrace.NeverSample()
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio)
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample())
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))
	default:
		return sdktrace.ParentBased(sdktrace.AlwaysSample())
	}
}

// newResource describes the process: the SDK's own attributes, cfg.Attributes, the service
// name.
func newResource(cfg Config) *resource.Resource {
	keys := make([]string, 0, len(cfg.Attributes))
	for k := range cfg.Attributes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := make([]attribute.KeyValue, 0, len(keys)+1)
	for _, k := range keys {
		attrs = append(attrs, attribute.String(k, cfg.Attributes[k]))
	}
	name := cfg.ServiceName
	if name == "" {
		name = cfg.DefaultServiceName
	}
	attrs = append(attrs, semconv.ServiceName(name))
	own := resource.NewSchemaless(attrs...)
	r, err := resource.Merge(resource.Default(), own)
	if err != nil { // only on conflicting schema URLs, which a schemaless resource cannot have
		return own
	}
	return r
}
