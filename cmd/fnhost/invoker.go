package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/fnhost/fnhost/functions/pf/invocation"
	"github.com/fnhost/fnhost/functions/pf/plugin"
	"github.com/fnhost/fnhost/runtime/host"
	"github.com/fnhost/fnhost/trigger"
)

// hostInvoker is the trigger's Invoker over the runtime's in-process Invoke: embedded mode.
type hostInvoker struct{ h *host.Host }

var _ trigger.Invoker = hostInvoker{}

// Invoke implements trigger.Invoker.
func (a hostInvoker) Invoke(ctx context.Context, fn trigger.Function, req *trigger.Request, emit func(trigger.Output) error) (trigger.Result, error) {
	props := make(map[string]string, len(req.Properties)+4) // room for the four set below
	maps.Copy(props, req.Properties)
	props[invocation.ID] = req.ID
	if req.ContentType != "" {
		props[invocation.ContentType] = req.ContentType
	}
	if req.TraceParent != "" {
		props[invocation.TraceParent] = req.TraceParent
	}
	if req.TraceState != "" {
		props[invocation.TraceState] = req.TraceState
	}
	now := time.Now()
	// EnforceDeadline: the trigger's synchronous calls come with a ctx that does not carry
	// req.Deadline (trigger.Invoker), so the plugin client bounds the call by it.
	preq := &plugin.Request{
		Payload: req.Payload, Key: req.Key, Properties: props, Topic: "http",
		EventTime: now, PublishTime: now, Deadline: req.Deadline, EnforceDeadline: true,
	}
	res, err := a.h.Invoke(ctx, fn.String(), preq, func(e plugin.Event) error {
		if e.Kind != plugin.EventOutput {
			return nil
		}
		return emit(trigger.Output{
			Payload: e.Output.Payload, Key: e.Output.Key, Properties: e.Output.Properties,
			ContentType: e.Output.Properties[invocation.ContentType],
		})
	})
	switch {
	case errors.Is(err, host.ErrFunctionNotFound):
		return trigger.Result{}, fmt.Errorf("%w: %s is not among the functions this runtime runs", trigger.ErrFunctionNotFound, fn)
	case errors.Is(err, host.ErrUnavailable):
		return trigger.Result{}, fmt.Errorf("%w: %s has no running process right now (restarting?)", trigger.ErrUnavailable, fn)
	case err != nil:
		return trigger.Result{}, err
	}
	out := trigger.Result{Outputs: res.Outputs}
	if k, failed := errorKind(res.Kind); failed {
		out.Err = &trigger.FunctionError{Kind: k, Message: res.Error}
	}
	return out, nil
}

// errorKind maps the plugin's failure kinds to the trigger's; other kinds are successes.
func errorKind(k plugin.Kind) (trigger.ErrorKind, bool) {
	switch k {
	case plugin.KindUser:
		return trigger.KindUser, true
	case plugin.KindPanic:
		return trigger.KindPanic, true
	case plugin.KindDeadline:
		return trigger.KindDeadline, true
	case plugin.KindCanceled:
		return trigger.KindCanceled, true
	}
	return "", false
}

// Functions implements trigger.Invoker.
func (a hostInvoker) Functions(context.Context) ([]trigger.FunctionInfo, error) {
	fns := a.h.Functions()
	out := make([]trigger.FunctionInfo, 0, len(fns))
	for _, m := range fns {
		out = append(out, trigger.FunctionInfo{
			Function:    trigger.Function{Tenant: m.Tenant, Namespace: m.Namespace, Name: m.Name},
			Inputs:      m.Inputs,
			Output:      m.Output,
			Parallelism: m.Parallelism,
			Runtime:     runtimeName(a.h),
			Timeout:     m.Timeout,
		})
	}
	return out, nil
}

func runtimeName(h *host.Host) string {
	if h.Embedded() {
		return "embedded"
	}
	return "host"
}
