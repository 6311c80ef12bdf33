package trigger

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors an Invoker (or Publisher) returns; the trigger maps them to HTTP statuses.
var (
	// ErrFunctionNotFound: no such function (404).
	ErrFunctionNotFound = errors.New("trigger: function not found")
	// ErrUnavailable: the invoker cannot run anything right now, e.g. Pulsar is down or the
	// plugin is restarting (503 with Retry-After). A retry later may succeed.
	ErrUnavailable = errors.New("trigger: invoker unavailable")
	// ErrOverloaded: the function or invoker is at its concurrency limit (429 with Retry-After).
	ErrOverloaded = errors.New("trigger: invoker overloaded")
)

// Invoker runs functions. cmd/fnhost wires the host runtime's in-process invoker to it; a
// Pulsar-topic invoker comes later. Implementations must be safe for concurrent use.
type Invoker interface {
	// Invoke runs one invocation of fn with req and returns when the function has finished.
	//
	// It calls emit once per output, in order, from one goroutine, and never after it returns.
	// emit may keep out.Payload: the invoker must not modify it afterwards. When emit returns an
	// error (the caller went away, or the trigger refuses more output) the invoker stops the
	// invocation as soon as it can and returns that error, wrapped.
	//
	// req.Deadline is the invocation's deadline: the invoker passes it on to the function and
	// returns by then whatever the function does (ctx.Err()-like: context.DeadlineExceeded,
	// wrapped). ctx is cancelled when the caller goes away, which the invoker passes on too; it
	// may or may not carry the deadline as well (a synchronous call's does not, to save a
	// timer and a context per call).
	//
	// The returned error is for the invocation machinery: ErrFunctionNotFound, ErrUnavailable,
	// ErrOverloaded (wrapped or not), ctx.Err(), or anything else (500). A function that ran and
	// failed is not an error: it is a nil error and a Result whose Err says how it failed.
	Invoke(ctx context.Context, fn Function, req *Request, emit func(Output) error) (Result, error)

	// Functions lists what can be invoked. It is called per catalogue request; an invoker with
	// a slow source caches it.
	Functions(ctx context.Context) ([]FunctionInfo, error)
}

// Publisher sends an event to a topic without waiting for any function (fire and forget).
// It is optional: a trigger without one answers 501 on the topics route.
type Publisher interface {
	// Publish hands msg to the topic's producer and returns once it is accepted for sending
	// (it may be batched; it does not wait for the broker's receipt). It honours ctx and is safe
	// for concurrent use. ErrUnavailable and ErrOverloaded map as for Invoke.
	Publish(ctx context.Context, topic Topic, msg Message) error
}

// Function names a function as Pulsar does: tenant/namespace/name.
type Function struct {
	Tenant    string `json:"tenant"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// String returns tenant/namespace/name.
func (f Function) String() string { return f.Tenant + "/" + f.Namespace + "/" + f.Name }

// Topic names a topic: persistent://tenant/namespace/name.
type Topic struct {
	Tenant    string `json:"tenant"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// String returns the full topic name, persistent://tenant/namespace/name.
func (t Topic) String() string {
	return "persistent://" + t.Tenant + "/" + t.Namespace + "/" + t.Name
}

// Request is one invocation's input, built from the HTTP request.
type Request struct {
	// ID is the invocation id (see functions/pf/invocation.ID), returned to the HTTP caller.
	ID string
	// Payload is the request body.
	Payload []byte
	// Key is the message key, from X-Message-Key; empty when not given.
	Key string
	// Properties are the message properties from X-Message-Property-<name> headers. Names are
	// lower case (HTTP header names are case-insensitive). Nil when there are none.
	Properties map[string]string
	// ContentType is the request's Content-Type, empty when not given.
	ContentType string
	// Deadline is the absolute deadline of the invocation, which the Invoker enforces; the
	// ctx given with the request may carry it too (see Invoker.Invoke).
	Deadline time.Time
	// TraceParent and TraceState are the W3C trace context the invocation continues, empty
	// when there is none: with tracing on, the trigger's SERVER span for this request (a child
	// of the caller's traceparent header, when given); with tracing off, the caller's
	// traceparent and tracestate headers as they came.
	TraceParent string
	TraceState  string
}

// Message is an event published to a topic by the topics route.
type Message struct {
	Payload     []byte
	Key         string
	Properties  map[string]string
	ContentType string
	// TraceParent and TraceState are the trace context, as for Request.
	TraceParent string
	TraceState  string
}

// Output is one output of an invocation.
type Output struct {
	Payload     []byte
	Key         string
	Properties  map[string]string
	ContentType string
	// Seq is the output's position in its invocation: 0, 1, 2… The trigger numbers outputs in
	// emit order and overwrites it, so an Invoker may leave it zero. In streams and records it
	// is the event id, so a retry's outputs go on after the failed attempt's; a synchronous
	// answer holds one attempt and numbers it from 0.
	Seq int64
	// Attempt is the delivery of the input that produced the output: 0 the first, n its n-th
	// retry. An Invoker that sees the function retried emits the retry's outputs with the
	// higher attempt; the trigger then drops (sync, async) or marks as superseded (streams)
	// the outputs of the failed attempt, so the two never mix.
	Attempt int
}

// ErrorKind says how a function failed.
type ErrorKind string

// The kinds of function failure.
const (
	// KindUser: the function returned an error (502).
	KindUser ErrorKind = "user"
	// KindPanic: the function panicked; the invoker recovered it (502).
	KindPanic ErrorKind = "panic"
	// KindDeadline: the deadline passed before the function finished (504).
	KindDeadline ErrorKind = "deadline"
	// KindCanceled: the invocation was cancelled, e.g. the caller went away or shutdown.
	KindCanceled ErrorKind = "canceled"
)

// FunctionError describes a function's failure. It is part of a Result, not an Invoke error.
type FunctionError struct {
	Kind    ErrorKind `json:"kind"`
	Message string    `json:"message"`
}

// Error returns the kind and the message.
func (e *FunctionError) Error() string { return string(e.Kind) + ": " + e.Message }

// Result is how an invocation ended.
type Result struct {
	// Err is nil when the function succeeded.
	Err *FunctionError
	// Outputs is how many outputs the function emitted (informational; the trigger counts too).
	Outputs int
	// Attempt is the attempt that ended the invocation (see Output.Attempt). Outputs of
	// another attempt are superseded, even when this one emitted none.
	Attempt int
}

// FunctionInfo describes an invocable function for the catalogue routes.
type FunctionInfo struct {
	Function
	// Inputs are the input topics; Output is the output topic (may be empty).
	Inputs []string `json:"inputs,omitempty"`
	Output string   `json:"output,omitempty"`
	// Parallelism is the configured number of instances.
	Parallelism int `json:"parallelism,omitempty"`
	// Runtime says where it runs, e.g. "embedded", "host" or "pulsar".
	Runtime string `json:"runtime,omitempty"`
	// Timeout is the function's own invocation timeout (0: none); X-Timeout cannot extend it.
	Timeout time.Duration `json:"-"`
	// Description is free text, e.g. from the manifest.
	Description string `json:"description,omitempty"`
}
