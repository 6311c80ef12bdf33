package host

import (
	"context"
	"errors"
	"time"

	"github.com/fnhost/fnhost/functions/pf/plugin"
	"github.com/fnhost/fnhost/runtime/pool"
)

// maxChainDepth bounds in-process output-topic chaining (A's output feeds B, B's feeds C …),
// so that a cycle of functions cannot run forever.
const maxChainDepth = 8

type chainDepthKey struct{}

// Invoke runs the function fqfn once for req and calls fn for each event (outputs, user
// metrics, manual acks) in the order the function produced them, from one goroutine, before
// it returns. The function's timeout bounds req's deadline, as it does for an input from a
// topic: the call ends at the earlier of the two. An error wrapping
// ErrFunctionNotFound or ErrUnavailable means the function did not run to a result; a function
// that ran and failed is a Result whose Err is not nil.
//
// In embedded mode, the outputs of a function whose output topic is another function's input
// are then fed to that function, in process and asynchronously: like a publish to a topic,
// the caller does not wait for them.
func (h *Host) Invoke(ctx context.Context, fqfn string, req *plugin.Request, fn func(plugin.Event) error) (plugin.Result, error) {
	f, err := h.lookup(fqfn)
	if err != nil {
		return plugin.Result{}, err
	}
	if f.m.Timeout > 0 {
		if d := time.Now().Add(f.m.Timeout); req.Deadline.IsZero() || d.Before(req.Deadline) {
			r := *req
			r.Deadline = d
			req = &r
		}
	}
	ctx, span := h.traceInvoke(ctx, fqfn, req)
	if span.span != nil {
		r := *req
		r.Properties = span.ForFunction(req.Properties)
		req = &r
	}
	downstream := h.downstream(f)
	var outputs [][]byte
	start := time.Now()
	inFlight := f.metrics.InFlight()
	inFlight.Inc()
	defer inFlight.Dec()
	res, slot, err := f.pool.Invoke(ctx, req, func(e plugin.Event) error {
		switch e.Kind {
		case plugin.EventMetric:
			f.metrics.Instance(0).RecordMetric(e.Metric.Name, e.Metric.Value)
		case plugin.EventOutput:
			if len(downstream) > 0 {
				outputs = append(outputs, e.Output.Payload)
			}
		}
		return fn(e)
	})
	span.End(err, res, nil)
	sm := f.metrics.Instance(slot)
	sm.Received()
	switch {
	case err != nil:
		sm.SystemException(err.Error())
		return res, err
	case res.Kind != plugin.KindNone:
		sm.UserException(res.Error)
		return res, nil
	}
	sm.Processed(time.Since(start))
	if len(downstream) > 0 {
		h.chain(ctx, f, downstream, outputs)
	}
	return res, nil
}

// downstream returns the functions fed by f's output topic, in embedded mode only.
func (h *Host) downstream(f *function) []*function {
	if h.client != nil || f.m.Output == "" {
		return nil
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []*function
	for _, g := range h.order {
		for _, in := range g.m.Inputs {
			if in == f.m.Output {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

// chain feeds outputs to the downstream functions, each output as one input, in goroutines the
// host owns and Close waits for.
func (h *Host) chain(ctx context.Context, from *function, to []*function, outputs [][]byte) {
	depth, _ := ctx.Value(chainDepthKey{}).(int)
	if depth >= maxChainDepth {
		h.cfg.Logger.Warn("output-topic chain too deep; not feeding further", "function", from.m.FQFN(), "depth", depth)
		return
	}
	// The chained invocations outlive the caller's request, like messages on a topic.
	base := context.WithValue(context.WithoutCancel(ctx), chainDepthKey{}, depth+1)
	for _, g := range to {
		h.chains.Go(func() {
			for _, payload := range outputs {
				cctx, cancel := context.WithTimeout(base, h.cfg.ShutdownTimeout)
				_, err := h.Invoke(cctx, g.m.FQFN(), &plugin.Request{Payload: payload, Topic: from.m.Output}, func(plugin.Event) error { return nil })
				cancel()
				if err != nil && !errors.Is(err, pool.ErrClosed) {
					h.cfg.Logger.Warn("feeding output to the next function", "from", from.m.FQFN(), "function", g.m.FQFN(), "err", err)
				}
			}
		})
	}
}
