package tracing

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
)

func TestFromEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  []string
		want Config
	}{
		{"nothing set: off", nil,
			Config{Protocol: ProtocolHTTP, Sampler: "parentbased_always_on", SamplerRatio: 1}},
		{"base endpoint gets the traces path", []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318/"},
			Config{Enabled: true, Protocol: ProtocolHTTP, Endpoint: "http://127.0.0.1:4318/v1/traces", Sampler: "parentbased_always_on", SamplerRatio: 1}},
		{"traces endpoint is used as given and wins", []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=https://b/otlp"},
			Config{Enabled: true, Protocol: ProtocolHTTP, Endpoint: "https://b/otlp", Sampler: "parentbased_always_on", SamplerRatio: 1}},
		{"grpc endpoint as given", []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"},
			Config{Enabled: true, Protocol: ProtocolGRPC, Endpoint: "http://c:4317", Sampler: "parentbased_always_on", SamplerRatio: 1}},
		{"traces protocol wins", []string{"OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf"},
			Config{Protocol: ProtocolHTTP, Sampler: "parentbased_always_on", SamplerRatio: 1}},
		{"SDK disabled", []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://a:4318", "OTEL_SDK_DISABLED=TRUE"},
			Config{Protocol: ProtocolHTTP, Endpoint: "http://a:4318/v1/traces", Sampler: "parentbased_always_on", SamplerRatio: 1}},
		{"exporter none", []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://a:4318", "OTEL_TRACES_EXPORTER=none"},
			Config{Protocol: ProtocolHTTP, Endpoint: "http://a:4318/v1/traces", Sampler: "parentbased_always_on", SamplerRatio: 1}},
		{"sampler, resource and service name", []string{
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://a:4318/v1/traces", "OTEL_TRACES_EXPORTER=otlp", "OTEL_SDK_DISABLED=false",
			"OTEL_TRACES_SAMPLER=traceidratio", "OTEL_TRACES_SAMPLER_ARG=0.25",
			"OTEL_RESOURCE_ATTRIBUTES=deployment.environment=prod, service.name=fromattrs,team=a%2Cb", "OTEL_SERVICE_NAME=svc",
			"FNHOST_ADDR=ignored"},
			Config{Enabled: true, Protocol: ProtocolHTTP, Endpoint: "http://a:4318/v1/traces", Sampler: "traceidratio", SamplerRatio: 0.25,
				ServiceName: "svc", Attributes: map[string]string{"deployment.environment": "prod", "service.name": "fromattrs", "team": "a,b"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := FromEnv(tc.env)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestFromEnvNamesBadValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  string
		want string // in the error: the variable and its value
	}{
		{"protocol", "OTEL_EXPORTER_OTLP_PROTOCOL=http/json", `OTEL_EXPORTER_OTLP_PROTOCOL="http/json": http/json is not supported`},
		{"traces protocol", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=thrift", `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="thrift": want http/protobuf or grpc`},
		{"endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT=127.0.0.1:4318", `OTEL_EXPORTER_OTLP_ENDPOINT="127.0.0.1:4318"`},
		{"traces endpoint", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=ftp://x", `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="ftp://x"`},
		{"disabled", "OTEL_SDK_DISABLED=yes", `OTEL_SDK_DISABLED="yes": want true or false`},
		{"exporter", "OTEL_TRACES_EXPORTER=zipkin", `OTEL_TRACES_EXPORTER="zipkin"`},
		{"sampler", "OTEL_TRACES_SAMPLER=sometimes", `OTEL_TRACES_SAMPLER="sometimes": want one of`},
		{"sampler arg", "OTEL_TRACES_SAMPLER_ARG=2", `OTEL_TRACES_SAMPLER_ARG="2": want a sampling ratio in [0, 1]`},
		{"sampler arg without a ratio sampler", "OTEL_TRACES_SAMPLER_ARG=0.5", `OTEL_TRACES_SAMPLER_ARG="0.5": only the traceidratio samplers`},
		{"resource attributes", "OTEL_RESOURCE_ATTRIBUTES=a=1,oops", `OTEL_RESOURCE_ATTRIBUTES="a=1,oops": "oops" is not key=value`},
		{"resource attribute value", "OTEL_RESOURCE_ATTRIBUTES=a=%zz", `OTEL_RESOURCE_ATTRIBUTES="a=%zz": value of a`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := FromEnv([]string{tc.env})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	// Every bad value is reported, not only the first.
	_, err := FromEnv([]string{"OTEL_SDK_DISABLED=maybe", "OTEL_TRACES_SAMPLER=often"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "OTEL_SDK_DISABLED")
	assert.Contains(t, err.Error(), "OTEL_TRACES_SAMPLER")
}

func TestNew(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tp, shutdown, err := New(ctx, Config{})
	require.NoError(t, err)
	assert.Nil(t, tp, "off: no provider")
	require.NoError(t, shutdown(ctx))

	_, _, err = New(ctx, Config{Enabled: true, Endpoint: "nowhere"})
	require.ErrorContains(t, err, "tracing: endpoint")

	// On, with nothing listening: the flush at shutdown is bounded and says so.
	tp, shutdown, err = New(ctx, Config{Enabled: true, Endpoint: "http://127.0.0.1:1/v1/traces", ShutdownTimeout: time.Second})
	require.NoError(t, err)
	_, span := tp.Tracer("test").Start(ctx, "s", trace.WithSpanKind(trace.SpanKindInternal))
	span.End()
	start := time.Now()
	_ = shutdown(ctx) // refused at once or cut at the bound; either way bounded
	assert.Less(t, time.Since(start), 10*time.Second)
}
