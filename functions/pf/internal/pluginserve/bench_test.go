package pluginserve_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
	"github.com/fnhost/fnhost/functions/pf/plugin"
	"github.com/fnhost/fnhost/functions/pf/plugin/pluginpb"
)

func echo(_ context.Context, _ call.Env, inv *call.Invocation) ([]byte, error) {
	return inv.Message.Payload(), nil
}

// BenchmarkPipelined is concurrent invocations over the one pipelined stream, in process.
func BenchmarkPipelined(b *testing.B) {
	p := newPair(b, echo, plugin.Config{})
	payload := []byte(`{"hello":"world"}`)
	b.SetParallelism(16)
	b.ReportAllocs()
	began := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.client.Invoke(context.Background(), &plugin.Request{Payload: payload}, func(plugin.Event) error { return nil }); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(began).Seconds(), "invocations/s")
}

// BenchmarkUnary is the same load with one Invoke RPC (one gRPC stream) per invocation.
func BenchmarkUnary(b *testing.B) {
	p := newPair(b, echo, plugin.Config{})
	rpc := pluginpb.NewFunctionClient(p.conn.Conn)
	payload := []byte(`{"hello":"world"}`)
	b.SetParallelism(16)
	b.ReportAllocs()
	began := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			stream, err := rpc.Invoke(context.Background(), &pluginpb.InvokeRequest{Payload: payload})
			if err != nil {
				b.Error(err)
				return
			}
			for {
				_, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(began).Seconds(), "invocations/s")
}
