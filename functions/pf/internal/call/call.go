// Package call is the seam between the function SDK's user API (package pf) and its launch
// modes (the Pulsar Functions instance, the fnhost plugin, the one-shot runner).
//
// A mode owns the transport: it receives an input, builds an Invocation, calls the Handler that
// pf built around the user's function, and delivers the outputs. pf owns the user's view: it
// turns the Env and the Invocation into a *pf.FunctionContext and calls the user's function
// through reflection. Neither side imports the other; both import this package.
package call

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// Info is the static identity and configuration of one function instance, the same for every
// invocation. Field names follow Pulsar's FunctionDetails.
type Info struct {
	Tenant      string
	Namespace   string
	Name        string
	InstanceID  int
	FuncID      string
	FuncVersion string
	ClusterName string
	// InputTopics are the input topics as configured (may be short names).
	InputTopics []string
	// OutputTopic is the sink topic; empty when the function has no output topic.
	OutputTopic string
	LogTopic    string
	// UserConfig is the decoded userConfig JSON object; never nil.
	UserConfig map[string]any
	// Port is the gRPC InstanceControl port (instance mode), MetricsPort the Prometheus port;
	// 0 outside instance mode.
	Port        int
	MetricsPort int
	// ExpectedHealthCheckInterval is in seconds, as upstream reports it.
	ExpectedHealthCheckInterval int32
	// ManualAck is true when the processing guarantee is MANUAL: the function acks inputs
	// itself through Invocation.Ack.
	ManualAck bool
}

// FQFN is tenant/namespace/name.
func (i *Info) FQFN() string { return i.Tenant + "/" + i.Namespace + "/" + i.Name }

// Output is one output of an invocation.
type Output struct {
	Payload []byte
	// Key is the output message key; empty means "the input's key".
	Key string
	// Properties are added to the output message (after the forwarded input properties).
	Properties map[string]string
	// EventTime, when set, replaces the input's event time on the output.
	EventTime time.Time
}

// Invocation is one call of the function for one input.
type Invocation struct {
	// Message is the input. In instance mode it is the consumed Pulsar message; in the other
	// modes a message built from what the host or the command line supplied.
	Message pulsar.Message
	// Emit delivers one output now, before the function returns (streaming). It is safe to
	// call from the function's goroutine only. An error means the output could not be
	// accepted (for example the invocation was cancelled) and the function should stop.
	Emit func(ctx context.Context, out Output) error
	// Ack acknowledges the input; set only when Info.ManualAck, nil otherwise.
	Ack func() error
}

// Env is what a mode supplies to every invocation besides the input.
type Env interface {
	// Info returns the instance's identity. The result must not be modified.
	Info() *Info
	// Producer returns a cached producer for topic, created on first use. Safe for
	// concurrent use. The mode owns the producers and closes them when it stops.
	Producer(topic string) (pulsar.Producer, error)
	// RecordMetric observes value into the user metric name. Safe for concurrent use.
	RecordMetric(name string, value float64)
	// Logger is the function's structured logger.
	Logger() *slog.Logger
}

// Handler runs the user's function for one invocation. out is the function's return value,
// nil when it returned none (then only emitted outputs, if any, are delivered). A non-nil
// error is a user error: the input failed.
type Handler func(ctx context.Context, env Env, inv *Invocation) (out []byte, err error)

// PanicError is a panic recovered from user code, turned into a user error.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("function panicked: %v", e.Value) }

// Safe wraps h so that a panic in user code becomes a *PanicError instead of ending the
// process: one bad input must never take the instance down.
func Safe(h Handler) Handler {
	return func(ctx context.Context, env Env, inv *Invocation) (out []byte, err error) {
		defer func() {
			if r := recover(); r != nil {
				out, err = nil, &PanicError{Value: r, Stack: debug.Stack()}
			}
		}()
		return h(ctx, env, inv)
	}
}

// ErrDeadline is returned for an invocation whose deadline (DESIGN §3) had passed before the
// function ran; the function is not called.
var ErrDeadline = errors.New("invocation deadline passed")
