//go:build unix

package plugin_test

import (
	"context"
	"testing"
	"time"

	"github.com/fnhost/fnhost/functions/pf/plugin"
)

// BenchmarkInvokeEcho measures invocations of the echo binary over one pipelined stream from
// many goroutines at once (GOMAXPROCS × 16), as the runtime drives a plugin.
func BenchmarkInvokeEcho(b *testing.B) {
	p := start(b, "echo", plugin.Config{})
	ctx := context.Background()
	payload := []byte(`{"hello":"world"}`)
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	began := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := p.Invoke(ctx, &plugin.Request{Payload: payload}, func(plugin.Event) error { return nil })
			if err != nil || res.Kind != plugin.KindNone {
				b.Errorf("invoke: %v %+v", err, res)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(began).Seconds(), "invocations/s")
}

// BenchmarkInvokeEchoSerial is one invocation at a time: the round-trip latency.
func BenchmarkInvokeEchoSerial(b *testing.B) {
	p := start(b, "echo", plugin.Config{})
	ctx := context.Background()
	payload := []byte(`{"hello":"world"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Invoke(ctx, &plugin.Request{Payload: payload}, func(plugin.Event) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
