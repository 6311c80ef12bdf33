// Package tracing sets up OpenTelemetry tracing for fnhost's own processes (the trigger and the
// host runtime) and carries W3C trace context through message properties.
//
// Tracing is on only when the standard OpenTelemetry variables ask for it: an OTLP endpoint
// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), unless OTEL_SDK_DISABLED
// is true or OTEL_TRACES_EXPORTER is none. FromEnv reads them (main passes os.Environ()) and
// reports every bad value; New builds a TracerProvider with a batch span processor and an OTLP
// exporter (http/protobuf, or grpc). Transport details the OTLP exporter reads itself
// (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _COMPRESSION, _CERTIFICATE…) and the batch processor's
// OTEL_BSP_* settings are left to the SDK.
//
// When tracing is off New returns a nil TracerProvider, and the components skip every tracing
// step: nothing is spent on the hot path. The function SDK (functions/pf) never links this
// package: it only copies traceparent and tracestate from inputs to outputs.
package tracing
