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
// when the HTTP caller of a synchronous call goes away; as an instance or a plugin, when it
// stops and its drain time is over. As an instance or a plugin, context.Cause of it, or of a
// context derived from it, is its Err. In a one-shot run, ctx ends at SIGINT or SIGTERM.
//
// A handler that honours ctx returns once it ends, and what it returns settles the invocation
// as usual: the error it returns then fails it. One that ignores ctx runs on: a synchronous
// HTTP call through fnhost's trigger is answered 504 at the deadline all the same,
// but the handler keeps its plugin slot (host runtime) or its instance's worker (Pulsar
// Functions) busy until it returns.
package pf
