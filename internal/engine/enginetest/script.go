// Package enginetest is the contract suite of package engine: one set of tests that every
// launcher (the SDK's Pulsar Functions instance, the host runtime) runs through its own
// adapters, with fakes for Pulsar (Source, Sink), so that the settlement rules of the engine's
// package doc hold identically in both. The function under test is Script, run by each
// launcher as its functions run: in process for the instance, as a plugin process for the
// host.
package enginetest

import (
	"context"
	"errors"
	"strings"

	"github.com/fnhost/fnhost/functions/pf/invocation"
)

// Ops is what Script needs of the launcher's function API.
type Ops interface {
	// Emit sends one output now, with an optional key and properties.
	Emit(ctx context.Context, payload []byte, key string, props map[string]string) error
	// Ack acknowledges the input (MANUAL).
	Ack() error
}

// Script is the function of the contract suite. Its input says what to do:
//
//	echo:X   return X
//	emit:A,B emit A and B, return nothing
//	fail     return an error ("boom")
//	panic    panic
//	block    wait for the context to end, return its error
//	forge    emit "forged" with key k2 and properties that try to overwrite the
//	         correlation properties, plus one of its own (own=1)
//	ack      acknowledge the input, return "acked"
//	ackfail  acknowledge the input, then fail
func Script(ctx context.Context, in []byte, ops Ops) ([]byte, error) {
	cmd, arg, _ := strings.Cut(string(in), ":")
	switch cmd {
	case "echo":
		return []byte(arg), nil
	case "emit":
		for part := range strings.SplitSeq(arg, ",") {
			if err := ops.Emit(ctx, []byte(part), "", nil); err != nil {
				return nil, err
			}
		}
		return nil, nil
	case "fail":
		return nil, errors.New("boom")
	case "panic":
		panic("script panicked")
	case "block":
		<-ctx.Done()
		return nil, ctx.Err()
	case "forge":
		return nil, ops.Emit(ctx, []byte("forged"), "k2", map[string]string{
			"own": "1", invocation.InputTopic: "forged", invocation.InputMessageID: "forged",
			invocation.ID: "forged", invocation.Seq: "99", invocation.Final: "true",
			invocation.Error: "forged", invocation.Attempt: "42", invocation.ReplyTo: "forged",
		})
	case "ack":
		return []byte("acked"), ops.Ack()
	case "ackfail":
		if err := ops.Ack(); err != nil {
			return nil, err
		}
		return nil, errors.New("boom after ack")
	}
	return nil, errors.New("enginetest: unknown script command " + cmd)
}
