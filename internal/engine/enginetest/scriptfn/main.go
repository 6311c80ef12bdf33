// Command scriptfn is enginetest.Script as a function binary built with the SDK: the host
// runtime runs the engine's contract suite through it, as plugin processes.
package main

import (
	"context"
	"errors"

	"github.com/fnhost/fnhost/functions/pf"
	"github.com/fnhost/fnhost/internal/engine/enginetest"
)

type ops struct{ fc *pf.FunctionContext }

func (o ops) Emit(ctx context.Context, payload []byte, key string, props map[string]string) error {
	return o.fc.EmitOutput(ctx, pf.Output{Payload: payload, Key: key, Properties: props})
}

func (o ops) Ack() error { return o.fc.Ack() }

func handle(ctx context.Context, in []byte) ([]byte, error) {
	fc, ok := pf.FromContext(ctx)
	if !ok {
		return nil, errors.New("scriptfn: no function context")
	}
	return enginetest.Script(ctx, in, ops{fc})
}

func main() { pf.Start(handle) }
