package main

import (
	"context"
	"fmt"
	"log/slog"

	"go.opentelemetry.io/otel/trace"

	"github.com/fnhost/fnhost/internal/tracing"
)

// startTracing reads the OpenTelemetry variables of env and, when they ask for tracing,
// builds the tracer provider (service name service unless OTEL_SERVICE_NAME says otherwise)
// and installs it with the W3C propagator. It returns the provider, nil when tracing is off,
// and stop, which flushes the buffered spans within the tracing bound; call stop once, at exit.
func startTracing(ctx context.Context, service string, env []string, logger *slog.Logger) (trace.TracerProvider, func(), error) {
	cfg, err := tracing.FromEnv(env)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: %w", err)
	}
	cfg.DefaultServiceName = service
	tp, shutdown, err := tracing.New(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	if tp == nil {
		return nil, func() {}, nil
	}
	tracing.Install(tp, func(err error) { logger.Warn("tracing", "err", err) })
	logger.Info("tracing on", "endpoint", cfg.Endpoint, "protocol", cfg.Protocol, "sampler", cfg.Sampler)
	stop := func() {
		// At exit ctx is done; the flush has its own bound.
		if err := shutdown(context.WithoutCancel(ctx)); err != nil {
			logger.Warn("flushing spans at exit", "err", err)
		}
	}
	return tp, stop, nil
}
