// Package pf is fnhost's Go SDK for functions: the API of Apache's pulsar-function-go (Start,
// FromContext, FunctionContext, NewOutputMessage, GetUserConfValue…), so that an upstream
// function ports by changing its import path, plus what upstream lacks (several outputs per
// input with Emit, the input's key and properties, an slog Logger).
//
// One binary built with pf runs three ways (see Start): as a Pulsar Functions Go instance
// deployed with pulsar-admin functions create --go, as a plugin process of fnhost's host
// runtime, or once from a shell with its input on stdin.
//
// # The handler's context
//
// The ctx a handler receives carries the invocation's deadline, when there is one: the
// earlier of the function's timeout (timeoutMs in its configuration) and the deadline its
// caller gave, such as an HTTP caller's X-Timeout. It ends at that deadline (Err is
// context.DeadlineExceeded), or earlier with context.Canceled when the invocation is
// cancelled: in embedded mode (the trigger and host runtime in one process, without Pulsar),
// when the HTTP caller of a synchronous call goes away; in every mode, when the instance or
// plugin stops and its drain time is over. In every mode
// context.Cause of it, or of a context derived from it, is its Err.
//
// A handler that honours ctx ends on time, and the invocation fails as a deadline failure.
// One that ignores it runs on: a synchronous HTTP call through fnhost's trigger is answered
// 504 at the deadline all the same, but the handler keeps its plugin slot (host runtime) or
// its instance (Pulsar Functions) busy until it returns.
package pf
