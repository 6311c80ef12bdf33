package instance

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
	"github.com/fnhost/fnhost/functions/pf/plugin"
	"github.com/fnhost/fnhost/internal/engine"
)

// function is the engine's Function over the user's handler, called in process.
type function struct {
	handler call.Handler // wrapped by call.Safe: a panic is a *call.PanicError
	env     call.Env
	manual  bool // MANUAL: the function acks its inputs itself
}

var _ engine.Function = (*function)(nil)

var errReturned = errors.New("emit after the function returned")

// Invoke implements engine.Function: the output the handler returns is the last output; an
// error it returns is a user failure, of kind deadline when the call's context ran out.
func (f *function) Invoke(ctx context.Context, c *engine.Call, emit func(plugin.Event) error) (plugin.Result, int, error) {
	var returned atomic.Bool
	inv := &call.Invocation{Message: c.Message, Emit: func(ctx context.Context, out call.Output) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if returned.Load() {
			return errReturned
		}
		return emit(plugin.Event{Kind: plugin.EventOutput, Output: plugin.Output(out)})
	}}
	if f.manual {
		inv.Ack = func() error { return emit(plugin.Event{Kind: plugin.EventAck}) }
	}
	out, err := f.handler(ctx, f.env, inv)
	returned.Store(true)
	if err == nil {
		if out != nil {
			if err := emit(plugin.Event{Kind: plugin.EventOutput, Output: plugin.Output{Payload: out}, Last: true}); err != nil {
				return plugin.Result{Kind: plugin.KindUser, Error: err.Error()}, 0, nil
			}
		}
		return plugin.Result{}, 0, nil
	}
	res := plugin.Result{Kind: plugin.KindUser, Error: err.Error()}
	var pe *call.PanicError
	switch {
	case errors.As(err, &pe):
		res.Kind, res.Stack = plugin.KindPanic, string(pe.Stack)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		res.Kind = plugin.KindDeadline
	case errors.Is(ctx.Err(), context.Canceled):
		res.Kind = plugin.KindCanceled
	}
	return res, 0, nil
}
