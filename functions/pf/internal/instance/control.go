package instance

import (
	"context"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"

	pb "github.com/fnhost/fnhost/functions/pf/internal/pfproto"
	"github.com/fnhost/fnhost/internal/engine"
)

// control serves proto.InstanceControl, the service the worker calls for
// `pulsar-admin functions status|stats` and for its periodic health checks.
type control struct {
	pb.UnimplementedInstanceControlServer
	stats      *engine.Instance
	instanceID int
	health     *health
}

var _ pb.InstanceControlServer = (*control)(nil)

// GetFunctionStatus implements pb.InstanceControlServer.
func (c *control) GetFunctionStatus(context.Context, *emptypb.Empty) (*pb.FunctionStatus, error) {
	return status(c.stats.Snapshot(false), c.instanceID), nil
}

// GetAndResetMetrics implements pb.InstanceControlServer.
func (c *control) GetAndResetMetrics(context.Context, *emptypb.Empty) (*pb.MetricsData, error) {
	return metricsData(c.stats.Snapshot(true)), nil
}

// ResetMetrics implements pb.InstanceControlServer: it zeroes the _1min values.
func (c *control) ResetMetrics(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	c.stats.Snapshot(true)
	return &emptypb.Empty{}, nil
}

// GetMetrics implements pb.InstanceControlServer.
func (c *control) GetMetrics(context.Context, *emptypb.Empty) (*pb.MetricsData, error) {
	return metricsData(c.stats.Snapshot(false)), nil
}

// HealthCheck implements pb.InstanceControlServer: it records the check for the watchdog.
func (c *control) HealthCheck(context.Context, *emptypb.Empty) (*pb.HealthCheckResult, error) {
	c.health.checked()
	return &pb.HealthCheckResult{Success: true}, nil
}

// health remembers the worker's last health check. Safe for concurrent use.
type health struct {
	now  func() time.Time
	mu   sync.Mutex
	last time.Time
}

func newHealth(now func() time.Time) *health { return &health{now: now, last: now()} }

func (h *health) checked() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last = h.now()
}

func (h *health) since() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now().Sub(h.last)
}

// watch returns errNoHealthCheck once three intervals have passed without a health check: the
// worker that launched the instance is gone, and an orphan must not keep consuming. It
// returns nil when ctx is done.
func (h *health) watch(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if d := h.since(); d > 3*interval {
				return &noHealthCheckError{since: d, interval: interval}
			}
		}
	}
}

type noHealthCheckError struct{ since, interval time.Duration }

func (e *noHealthCheckError) Error() string {
	return "no health check from the worker for " + e.since.Round(time.Second).String() +
		" (3 × expectedHealthCheckInterval " + e.interval.String() + "): stopping the orphaned instance"
}
