package instance

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"

	pb "github.com/fnhost/fnhost/functions/pf/internal/pfproto"
	"github.com/fnhost/fnhost/internal/engine"
)

// simulated returns metrics after 3 inputs: two succeeded (10 ms and 30 ms), one failed, one
// output failed to publish, and a user metric.
func simulated(t *testing.T, now func() time.Time) *engine.Metrics {
	t.Helper()
	m := engine.NewMetrics(engine.Identity{Tenant: "public", Namespace: "default", Name: "fn", Cluster: "standalone"}, []int{3}, now)
	st := m.Instance(0)
	for range 3 {
		st.Received()
	}
	st.Processed(10 * time.Millisecond)
	st.Processed(30 * time.Millisecond)
	st.UserException("bad input")
	st.SystemException("publish failed")
	st.RecordMetric("hits", 1)
	st.RecordMetric("hits", 3)
	return m
}

func TestInstanceControlOverGRPC(t *testing.T) {
	t.Parallel()
	at := time.UnixMilli(1_700_000_000_123)
	st := simulated(t, func() time.Time { return at })
	hc := newHealth(func() time.Time { return at })
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	stop := serve(st, hc, 3, lis, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(stop)

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, conn.Close()) })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// Call by the wire names the worker uses, not through the generated client.
	invoke := func(method string, out any) {
		t.Helper()
		require.NoError(t, conn.Invoke(ctx, "/proto.InstanceControl/"+method, &emptypb.Empty{}, out))
	}

	var status pb.FunctionStatus
	invoke("GetFunctionStatus", &status)
	assert.True(t, status.Running)
	assert.Equal(t, int64(3), status.NumReceived)
	assert.Equal(t, int64(2), status.NumSuccessfullyProcessed)
	assert.Equal(t, int64(1), status.NumUserExceptions)
	assert.Equal(t, int64(1), status.NumSystemExceptions)
	assert.InDelta(t, 20.0, status.AverageLatency, 1e-9, "milliseconds")
	assert.Equal(t, at.UnixMilli(), status.LastInvocationTime, "milliseconds")
	assert.Equal(t, "3", status.InstanceId)
	require.Len(t, status.LatestUserExceptions, 1)
	assert.Equal(t, "bad input", status.LatestUserExceptions[0].ExceptionString)
	assert.Equal(t, at.UnixMilli(), status.LatestUserExceptions[0].MsSinceEpoch)
	require.Len(t, status.LatestSystemExceptions, 1)

	var m pb.MetricsData
	invoke("GetMetrics", &m)
	assert.Equal(t, int64(3), m.ReceivedTotal)
	assert.Equal(t, int64(3), m.ReceivedTotal_1Min)
	assert.Equal(t, int64(2), m.ProcessedSuccessfullyTotal)
	assert.Equal(t, int64(1), m.UserExceptionsTotal_1Min)
	assert.Equal(t, int64(1), m.SystemExceptionsTotal)
	assert.InDelta(t, 20.0, m.AvgProcessLatency, 1e-9)
	assert.InDelta(t, 20.0, m.AvgProcessLatency_1Min, 1e-9)
	assert.Equal(t, at.UnixMilli(), m.LastInvocation)
	assert.Equal(t, map[string]float64{"hits": 2}, m.UserMetrics)

	invoke("GetAndResetMetrics", &m)
	assert.Equal(t, int64(3), m.ReceivedTotal_1Min, "values before the reset")
	invoke("GetMetrics", &m)
	assert.Equal(t, int64(3), m.ReceivedTotal, "totals survive a reset")
	assert.Zero(t, m.ReceivedTotal_1Min)
	assert.Zero(t, m.ProcessedSuccessfullyTotal_1Min)

	st.Instance(0).Received()
	invoke("ResetMetrics", &emptypb.Empty{})
	invoke("GetMetrics", &m)
	assert.Zero(t, m.ReceivedTotal_1Min)
	assert.Equal(t, int64(4), m.ReceivedTotal)

	var hr pb.HealthCheckResult
	invoke("HealthCheck", &hr)
	assert.True(t, hr.Success)
}

func TestMetricsText(t *testing.T) {
	t.Parallel()
	at := time.UnixMilli(1_700_000_000_123)
	st := simulated(t, func() time.Time { return at })
	srv := httptest.NewServer(metricsHandler(st))
	t.Cleanup(srv.Close)
	labels := `cluster="standalone",fqfn="public/default/fn",instance_id="3",name="fn",namespace="public/default",tenant="public"`
	for _, path := range []string{"/", "/metrics"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			resp, err := http.Get(srv.URL + path)
			require.NoError(t, err)
			defer func() { _ = resp.Body.Close() }() // a response body: closing it only releases the connection
			require.Equal(t, http.StatusOK, resp.StatusCode)
			b, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			text := string(b)
			for _, line := range []string{
				"pulsar_function_received_total{" + labels + "} 3",
				"pulsar_function_received_total_1min{" + labels + "} 3",
				"pulsar_function_processed_successfully_total{" + labels + "} 2",
				"pulsar_function_processed_successfully_total_1min{" + labels + "} 2",
				"pulsar_function_user_exceptions_total{" + labels + "} 1",
				"pulsar_function_user_exceptions_total_1min{" + labels + "} 1",
				"pulsar_function_system_exceptions_total{" + labels + "} 1",
				"pulsar_function_system_exceptions_total_1min{" + labels + "} 1",
				"pulsar_function_process_latency_ms_sum{" + labels + "} 40",
				"pulsar_function_process_latency_ms_count{" + labels + "} 2",
				"pulsar_function_process_latency_ms_1min_count{" + labels + "} 2",
				"pulsar_function_last_invocation{" + labels + "} 1.700000000123e+12",
				`pulsar_function_user_exception{cluster="standalone",error="bad input",fqfn="public/default/fn",instance_id="3",name="fn",namespace="public/default",tenant="public"} 1`,
				`pulsar_function_system_exception{cluster="standalone",error="publish failed",fqfn="public/default/fn",instance_id="3",name="fn",namespace="public/default",tenant="public"} 1`,
				`pulsar_function_user_metric_count{cluster="standalone",fqfn="public/default/fn",instance_id="3",metric="hits",name="fn",namespace="public/default",tenant="public"} 2`,
				`pulsar_function_user_metric{cluster="standalone",fqfn="public/default/fn",instance_id="3",metric="hits",name="fn",namespace="public/default",tenant="public",quantile="0.5"} 1`,
			} {
				assert.True(t, strings.Contains(text, line+"\n"), "missing line %s", line)
			}
			assert.NotContains(t, text, "go_goroutines", "no Go runtime collectors")
		})
	}
	resp, err := http.Get(srv.URL + "/other")
	require.NoError(t, err)
	_ = resp.Body.Close() // a response body: closing it only releases the connection
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestLatestExceptionsBounded(t *testing.T) {
	t.Parallel()
	st := engine.NewMetrics(engine.Identity{}, nil, time.Now).Instance(0)
	for i := range 25 {
		st.UserException(strings.Repeat("x", i+1))
	}
	exc := status(st.Snapshot(false), 0).LatestUserExceptions
	require.Len(t, exc, engine.MaxLatestExceptions)
	assert.Len(t, exc[len(exc)-1].ExceptionString, 25, "newest last")
	assert.Equal(t, int64(25), status(st.Snapshot(false), 0).NumUserExceptions)
}

func TestHealthWatch(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hc := newHealth(time.Now)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- hc.watch(ctx, 10*time.Second) }()
		// Checks every 10 s keep it alive for a long time.
		for range 10 {
			time.Sleep(10 * time.Second) // fake time inside the bubble
			hc.checked()
		}
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("watch returned while checks arrive: %v", err)
		default:
		}
		start := time.Now()
		err := <-done // no more checks
		var nhc *noHealthCheckError
		require.ErrorAs(t, err, &nhc)
		assert.Greater(t, time.Since(start), 30*time.Second)
		assert.LessOrEqual(t, time.Since(start), 40*time.Second)
	})
}

func TestHealthWatchStopsWithContext(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		hc := newHealth(time.Now)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- hc.watch(ctx, time.Second) }()
		cancel()
		assert.NoError(t, <-done)
	})
}
