package engine_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/fnhost/fnhost/functions/pf/plugin"
	"github.com/fnhost/fnhost/internal/engine"
	"github.com/fnhost/fnhost/internal/engine/enginetest"
)

// launcher runs the contract suite on the engine alone, with the script called directly.
type launcher struct{}

func (launcher) Config(_ testing.TB, s enginetest.Settings) engine.Config {
	return engine.Config{Function: "public/default/fn", OutputTopic: s.Output, Guarantee: s.Guarantee, Order: s.Order,
		Lanes: s.Lanes, Timeout: s.Timeout, MaxRetries: s.MaxRetries, ForwardProperties: s.Forward}
}

func (launcher) Function(testing.TB, enginetest.Settings) engine.Function { return scriptFunction{} }

type scriptFunction struct{}

type ops struct{ emit func(plugin.Event) error }

func (o ops) Emit(_ context.Context, payload []byte, key string, props map[string]string) error {
	return o.emit(plugin.Event{Kind: plugin.EventOutput, Output: plugin.Output{Payload: payload, Key: key, Properties: props}})
}

func (o ops) Ack() error { return o.emit(plugin.Event{Kind: plugin.EventAck}) }

func (scriptFunction) Invoke(ctx context.Context, c *engine.Call, emit func(plugin.Event) error) (res plugin.Result, _ int, _ error) {
	defer func() {
		if r := recover(); r != nil {
			res = plugin.Result{Kind: plugin.KindPanic, Error: fmt.Sprint(r)}
		}
	}()
	out, err := enginetest.Script(ctx, c.Message.Payload(), ops{emit})
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return plugin.Result{Kind: plugin.KindDeadline, Error: err.Error()}, 0, nil
	case err != nil:
		return plugin.Result{Kind: plugin.KindUser, Error: err.Error()}, 0, nil
	case out != nil:
		if err := emit(plugin.Event{Kind: plugin.EventOutput, Output: plugin.Output{Payload: out}, Last: true}); err != nil {
			return plugin.Result{Kind: plugin.KindUser, Error: err.Error()}, 0, nil
		}
	}
	return plugin.Result{}, 0, nil
}

func TestContract(t *testing.T) { enginetest.Run(t, launcher{}, enginetest.NewFakeBus()) }
