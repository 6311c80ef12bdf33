package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/fnhost/fnhost/cmd/fnhost-bench/bareplugin"
	"github.com/fnhost/fnhost/functions/pf/plugin"
)

// call is one invocation of a benchmarked plugin; it checks the echo.
type call func(ctx context.Context) error

// invoke runs measurement 2 and adds the memory of both plugin processes to mem. Both plugins
// run side by side; the latency calls alternate between them in rounds, so drift (other
// processes, CPU frequency) hits both alike. The loads run one after the other.
func (b *bench) invoke(ctx context.Context, mem *memory) (*section, error) {
	sec := newSection(fmt.Sprintf("plugin invoke (no HTTP, %d B echo)", payloadSize),
		"p50", "p99", "calls/s", "vs baseline", "target", "")
	in := payload(0)

	b.progress("plugin invoke: starting the bare go-plugin echo and fnhost's echo plugin…")
	bare, err := bareplugin.Start(b.bareBin, hclog.New(&hclog.LoggerOptions{
		Name: "bareecho", Output: b.stderr, Level: hclog.Warn,
	}))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errOperational, err)
	}
	defer bare.Kill()
	unary := func(ctx context.Context) error {
		out, err := bare.Echo(ctx, in)
		if err != nil {
			return err
		}
		return checkEcho(in, out)
	}

	latencyTarget := "p50 ≤" + ratio(latencyTargetRatio)
	rateTarget := "≥" + count(invokeTargetRate) + "/s"
	var fnErr error // fnhost's failure: a result (MISS), not an operational error
	p, err := plugin.Start(ctx, plugin.Config{
		Path:   b.echoBin,
		Info:   plugin.Info{Tenant: "public", Namespace: "default", Name: "bench-" + b.runID + "-echo", ClusterName: "standalone"},
		Logger: b.log.With("component", "plugin"),
	})
	if err != nil {
		fnErr = err
	} else {
		defer p.Kill()
	}
	invoke := func(ctx context.Context) error {
		var out []byte
		res, err := p.Invoke(ctx, &plugin.Request{Payload: in}, func(e plugin.Event) error {
			if e.Kind == plugin.EventOutput {
				out = e.Output.Payload
			}
			return nil
		})
		switch {
		case err != nil:
			return err
		case res.Kind != plugin.KindNone:
			return fmt.Errorf("result %s: %s", res.Kind, res.Error)
		}
		return checkEcho(in, out)
	}

	b.progress("plugin invoke: latency, %d calls each in %d alternating rounds…", latencyCalls, latencyRounds)
	var bp50, bp99, fp50, fp99 time.Duration
	if fnErr == nil {
		lat, which, err := latency(ctx, unary, invoke)
		switch {
		case err != nil && which == 0:
			return nil, fmt.Errorf("%w: bare go-plugin unary: %w", errOperational, err)
		case err != nil:
			fnErr = err
		default:
			bp50, bp99, fp50, fp99 = lat[0][0], lat[0][1], lat[1][0], lat[1][1]
		}
	}
	if fnErr != nil {
		lat, _, err := latency(ctx, unary)
		if err != nil {
			return nil, fmt.Errorf("%w: bare go-plugin unary: %w", errOperational, err)
		}
		bp50, bp99 = lat[0][0], lat[0][1]
	}
	b.progress("plugin invoke: bare go-plugin unary, %d callers for %s…", loadCallers, b.cfg.Duration)
	bRate, err := load(ctx, b.cfg.Duration, loadCallers, unary)
	if err != nil {
		return nil, fmt.Errorf("%w: bare go-plugin unary load: %w", errOperational, err)
	}
	b.progress("plugin invoke: bare go-plugin pipelined stream for %s…", b.cfg.Duration)
	sRate, err := streamLoad(ctx, bare.Client, b.cfg.Duration, in)
	if err != nil {
		return nil, fmt.Errorf("%w: bare go-plugin stream: %w", errOperational, err)
	}
	bareMem, err := vmRSS(bare.Pid())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errOperational, err)
	}
	mem.baseline = bareMem
	bare.Kill()
	sec.add("baseline: bare go-plugin unary, 1 caller", micros(bp50), micros(bp99))
	sec.add(fmt.Sprintf("baseline: bare go-plugin unary, %d callers", loadCallers), "", "", count(bRate))
	sec.add("baseline: bare go-plugin bidi stream, pipelined", "", "", count(sRate))

	var fRate float64
	if fnErr == nil {
		b.progress("plugin invoke: fnhost echo plugin, %d callers for %s…", loadCallers, b.cfg.Duration)
		fRate, fnErr = load(ctx, b.cfg.Duration, loadCallers, invoke)
	}
	if fnErr != nil {
		sec.note("fnhost plugin.Invoke: %v", fnErr)
		sec.add("fnhost plugin.Invoke, 1 caller", "failed", "", "", "", latencyTarget, "MISS")
		sec.add(fmt.Sprintf("fnhost plugin.Invoke, %d callers", loadCallers), "", "", "failed", "", rateTarget, "MISS")
		return sec, nil
	}
	fnMem, err := vmRSS(p.Pid())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errOperational, err)
	}
	mem.add("fnhost echo plugin, plugin.Start (after invoke load)", fnMem, true)
	p.Kill()

	sec.add("fnhost plugin.Invoke, 1 caller", micros(fp50), micros(fp99), "",
		ratio(float64(fp50)/float64(bp50))+" p50", latencyTarget, verdict(float64(fp50) <= latencyTargetRatio*float64(bp50)))
	sec.add(fmt.Sprintf("fnhost plugin.Invoke, %d callers (pipelined stream)", loadCallers), "", "", count(fRate),
		ratio(fRate/sRate)+" stream", rateTarget, verdict(fRate >= invokeTargetRate))
	sec.note("fnhost with %d callers is %s the bare unary calls/s with %d callers", loadCallers, ratio(fRate/bRate), loadCallers)
	sec.note("latency: %d sequential calls per contender after %d warm-up calls, in %d rounds alternating between them; calls/s: %s of load",
		latencyCalls, warmupCalls, latencyRounds, b.cfg.Duration)
	return sec, nil
}

// latency warms each of calls up, then makes latencyCalls calls of each one after the other,
// in latencyRounds rounds that alternate between them, and returns each one's median and 99th
// percentile. On error, which is the index of the call that failed. It is bounded to a minute.
func latency(ctx context.Context, calls ...call) (lat [][2]time.Duration, which int, err error) {
	return alternatingLatency(ctx, time.Minute, warmupCalls, latencyCalls, latencyRounds, calls...)
}

// alternatingLatency warms each of calls up with warmup calls, then makes n sequential calls
// of each in rounds that alternate between them, and returns each one's median and 99th
// percentile. On error, which is the index of the call that failed. bound bounds it all.
func alternatingLatency(ctx context.Context, bound time.Duration, warmup, n, rounds int, calls ...call) (lat [][2]time.Duration, which int, err error) {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	for i, c := range calls {
		for range warmup {
			if err := c(ctx); err != nil {
				return nil, i, err
			}
		}
	}
	samples := make([][]time.Duration, len(calls))
	for range rounds {
		for i, c := range calls {
			for range n / rounds {
				start := time.Now()
				if err := c(ctx); err != nil {
					return nil, i, err
				}
				samples[i] = append(samples[i], time.Since(start))
			}
		}
	}
	for _, d := range samples {
		slices.Sort(d)
		lat = append(lat, [2]time.Duration{d[len(d)*50/100], d[len(d)*99/100]})
	}
	return lat, 0, nil
}

// load runs callers goroutines that call c back to back for d and returns the calls per
// second. The calls are bounded by d plus 30 s.
func load(ctx context.Context, d time.Duration, callers int, c call) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	var total atomic.Int64
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for range callers {
		wg.Go(func() {
			n := int64(0)
			defer func() { total.Add(n) }()
			for time.Now().Before(deadline) {
				if err := c(ctx); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
						cancel() // stop the other callers
					}
					mu.Unlock()
					return
				}
				n++
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(total.Load()) / elapsed.Seconds(), nil
}

// streamLoad sends on one echo stream for d from one goroutine while this one receives, and
// returns the echoes per second up to the last one.
func streamLoad(ctx context.Context, c *bareplugin.Client, d time.Duration, in []byte) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	s, err := c.Stream(ctx)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	deadline := start.Add(d)
	sender := goTask(func() error {
		for time.Now().Before(deadline) {
			if err := s.Send(in); err != nil {
				return fmt.Errorf("sending: %w", err)
			}
		}
		return s.CloseSend()
	})
	n := 0
	var last time.Time
	msg := new(wrapperspb.BytesValue)
	for {
		err := s.Recv(msg)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			cancel() // unblocks the sender
			<-sender.done
			return 0, errors.Join(fmt.Errorf("receiving: %w", err), sender.err)
		}
		n++
		last = time.Now()
	}
	if err := sender.wait(ctx); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, errors.New("no echo received")
	}
	return float64(n) / last.Sub(start).Seconds(), nil
}

// checkEcho fails when an echo did not return the bytes sent.
func checkEcho(in, out []byte) error {
	if !bytes.Equal(out, in) {
		return fmt.Errorf("echo returned %d bytes, not the %d sent", len(out), len(in))
	}
	return nil
}
