package pf

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
)

var (
	contextType = reflect.TypeFor[context.Context]()
	errorType   = reflect.TypeFor[error]()
	bytesType   = reflect.TypeFor[[]byte]()
)

// ErrInvalidHandler is wrapped by the error for a handler whose signature pf.Start cannot call.
var ErrInvalidHandler = errors.New("pf: invalid handler")

// wrap checks handler's signature once, at start, and returns the call.Handler that invokes
// it for every input. The accepted shapes are upstream's:
//
//	func()
//	func() error
//	func(in []byte) error
//	func() ([]byte, error)
//	func(in []byte) ([]byte, error)
//	func(ctx context.Context) error
//	func(ctx context.Context, in []byte) error
//	func(ctx context.Context) ([]byte, error)
//	func(ctx context.Context, in []byte) ([]byte, error)
//
// plus the ones upstream's examples use although its doc omits them: no result at all
// (func(ctx, in), func(ctx), func(in)). The input must be []byte and the output a byte
// slice: upstream documents "types compatible with encoding/json" but passes raw bytes and
// fails at the first message otherwise; pf refuses such a handler at start instead.
func wrap(handler any) (call.Handler, error) {
	if handler == nil {
		return nil, fmt.Errorf("%w: handler is nil", ErrInvalidHandler)
	}
	// The common shape skips reflection on the hot path.
	if f, ok := handler.(func(context.Context, []byte) ([]byte, error)); ok {
		return call.Safe(func(ctx context.Context, env call.Env, inv *call.Invocation) ([]byte, error) {
			return f(NewContext(ctx, &FunctionContext{env: env, inv: inv}), inv.Message.Payload())
		}), nil
	}
	fn := reflect.ValueOf(handler)
	t := fn.Type()
	if t.Kind() != reflect.Func {
		return nil, fmt.Errorf("%w: handler is a %s, want a func", ErrInvalidHandler, t.Kind())
	}
	if t.IsVariadic() {
		return nil, fmt.Errorf("%w: handler %s is variadic", ErrInvalidHandler, t)
	}

	takesCtx, takesIn := false, false
	switch t.NumIn() {
	case 0:
	case 1:
		switch {
		case t.In(0).Implements(contextType):
			takesCtx = true
		case t.In(0) == bytesType:
			takesIn = true
		default:
			return nil, fmt.Errorf("%w: handler %s: its one argument must be a context.Context or []byte, not %s", ErrInvalidHandler, t, t.In(0))
		}
	case 2:
		if !t.In(0).Implements(contextType) {
			return nil, fmt.Errorf("%w: handler %s: with two arguments the first must be a context.Context, not %s", ErrInvalidHandler, t, t.In(0))
		}
		if t.In(1) != bytesType {
			return nil, fmt.Errorf("%w: handler %s: the input argument must be []byte, not %s (decode it in the function)", ErrInvalidHandler, t, t.In(1))
		}
		takesCtx, takesIn = true, true
	default:
		return nil, fmt.Errorf("%w: handler %s takes %d arguments, at most 2 (context.Context, []byte)", ErrInvalidHandler, t, t.NumIn())
	}

	returnsOut, returnsErr := false, false
	switch t.NumOut() {
	case 0:
	case 1:
		if !t.Out(0).Implements(errorType) {
			return nil, fmt.Errorf("%w: handler %s: a single result must be an error, not %s", ErrInvalidHandler, t, t.Out(0))
		}
		returnsErr = true
	case 2:
		if o := t.Out(0); o.Kind() != reflect.Slice || o.Elem().Kind() != reflect.Uint8 {
			return nil, fmt.Errorf("%w: handler %s: the output must be []byte, not %s (encode it in the function)", ErrInvalidHandler, t, o)
		}
		if !t.Out(1).Implements(errorType) {
			return nil, fmt.Errorf("%w: handler %s: the second result must be an error, not %s", ErrInvalidHandler, t, t.Out(1))
		}
		returnsOut, returnsErr = true, true
	default:
		return nil, fmt.Errorf("%w: handler %s returns %d results, at most 2 ([]byte, error)", ErrInvalidHandler, t, t.NumOut())
	}

	h := func(ctx context.Context, env call.Env, inv *call.Invocation) ([]byte, error) {
		ctx = NewContext(ctx, &FunctionContext{env: env, inv: inv})
		args := make([]reflect.Value, 0, 2)
		if takesCtx {
			args = append(args, reflect.ValueOf(ctx))
		}
		if takesIn {
			args = append(args, reflect.ValueOf(inv.Message.Payload()))
		}
		res := fn.Call(args)
		var out []byte
		var err error
		if returnsOut && !res[0].IsNil() {
			out = res[0].Bytes()
		}
		if returnsErr {
			if e := res[len(res)-1]; !e.IsNil() {
				err = e.Interface().(error)
			}
		}
		return out, err
	}
	return call.Safe(h), nil
}
