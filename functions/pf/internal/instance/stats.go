package instance

import (
	"strconv"
	"time"

	pb "github.com/fnhost/fnhost/functions/pf/internal/pfproto"
	"github.com/fnhost/fnhost/internal/engine"
)

func msOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func exceptionInfos(list []engine.Exception) []*pb.FunctionStatus_ExceptionInformation {
	out := make([]*pb.FunctionStatus_ExceptionInformation, 0, len(list))
	for _, e := range list {
		out = append(out, &pb.FunctionStatus_ExceptionInformation{ExceptionString: e.Text, MsSinceEpoch: e.At.UnixMilli()})
	}
	return out
}

// status is what GetFunctionStatus returns; times are Unix milliseconds, latency milliseconds.
func status(s engine.Snapshot, instanceID int) *pb.FunctionStatus {
	return &pb.FunctionStatus{
		Running:                  true,
		NumReceived:              s.Total.Received,
		NumSuccessfullyProcessed: s.Total.Processed,
		NumUserExceptions:        s.Total.UserExceptions,
		LatestUserExceptions:     exceptionInfos(s.UserExceptions),
		NumSystemExceptions:      s.Total.SystemExceptions,
		LatestSystemExceptions:   exceptionInfos(s.SystemExceptions),
		AverageLatency:           s.Total.AvgLatencyMs(),
		LastInvocationTime:       msOrZero(s.LastInvocation),
		InstanceId:               strconv.Itoa(instanceID),
	}
}

// metricsData is what GetMetrics returns.
func metricsData(s engine.Snapshot) *pb.MetricsData {
	return &pb.MetricsData{
		ReceivedTotal:                   s.Total.Received,
		ReceivedTotal_1Min:              s.Window.Received,
		ProcessedSuccessfullyTotal:      s.Total.Processed,
		ProcessedSuccessfullyTotal_1Min: s.Window.Processed,
		SystemExceptionsTotal:           s.Total.SystemExceptions,
		SystemExceptionsTotal_1Min:      s.Window.SystemExceptions,
		UserExceptionsTotal:             s.Total.UserExceptions,
		UserExceptionsTotal_1Min:        s.Window.UserExceptions,
		AvgProcessLatency:               s.Total.AvgLatencyMs(),
		AvgProcessLatency_1Min:          s.Window.AvgLatencyMs(),
		LastInvocation:                  msOrZero(s.LastInvocation),
		UserMetrics:                     s.UserMetrics,
	}
}
