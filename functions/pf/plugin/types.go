package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/fnhost/fnhost/functions/pf/plugin/pluginpb"
)

// Info is the static identity of one function instance, sent to the plugin once by Configure.
// Field names follow Pulsar's FunctionDetails.
type Info struct {
	Tenant      string
	Namespace   string
	Name        string
	InstanceID  int
	FuncID      string
	FuncVersion string
	ClusterName string
	// InputTopics are the input topics as configured.
	InputTopics []string
	// OutputTopic is the sink topic; empty when the function has none.
	OutputTopic string
	LogTopic    string
	// UserConfig is the function's userConfig; it must marshal to a JSON object. nil means {}.
	UserConfig map[string]any
	// ManualAck is true for processingGuarantees MANUAL: the function acks its inputs itself,
	// which arrives as an EventAck.
	ManualAck bool
}

func (i *Info) proto() (*pluginpb.Info, error) {
	var userConfig string
	if len(i.UserConfig) > 0 {
		b, err := json.Marshal(i.UserConfig)
		if err != nil {
			return nil, fmt.Errorf("encoding userConfig of %s/%s/%s: %w", i.Tenant, i.Namespace, i.Name, err)
		}
		userConfig = string(b)
	}
	return &pluginpb.Info{
		Tenant:         i.Tenant,
		Namespace:      i.Namespace,
		Name:           i.Name,
		InstanceId:     int32(i.InstanceID),
		FuncId:         i.FuncID,
		FuncVersion:    i.FuncVersion,
		ClusterName:    i.ClusterName,
		InputTopics:    i.InputTopics,
		OutputTopic:    i.OutputTopic,
		LogTopic:       i.LogTopic,
		UserConfigJson: userConfig,
		ManualAck:      i.ManualAck,
	}, nil
}

// Request is one input to invoke the function with.
type Request struct {
	Payload     []byte
	Key         string
	OrderingKey string
	Properties  map[string]string
	// Topic is the topic the input came from.
	Topic        string
	ProducerName string
	// MessageID is the input's pulsar.MessageID.Serialize(); nil when it has none.
	MessageID       []byte
	EventTime       time.Time
	PublishTime     time.Time
	RedeliveryCount uint32
	// Deadline is the absolute deadline of the invocation. Zero means the deadline of the ctx
	// passed to Invoke, if it has one. An input already past its deadline is not run: the
	// Result has KindDeadline.
	Deadline time.Time
	// EnforceDeadline makes Invoke end at Deadline by itself, with context.DeadlineExceeded,
	// as if ctx carried it, even when the function ignores its context: a caller saves a
	// context.WithDeadline per call. Without it, Invoke waits for the plugin, which ends the
	// invocation at the deadline (KindDeadline) once the function returns.
	EnforceDeadline bool
}

// fill sets p, a zero message, to r with deadline.
func (r *Request) fill(p *pluginpb.InvokeRequest, deadline time.Time) {
	p.Payload = r.Payload
	p.Key = r.Key
	p.OrderingKey = r.OrderingKey
	p.Properties = r.Properties
	p.Topic = r.Topic
	p.ProducerName = r.ProducerName
	p.MessageId = r.MessageID
	p.EventTimeUnixNano = unixNano(r.EventTime)
	p.PublishTimeUnixNano = unixNano(r.PublishTime)
	p.RedeliveryCount = r.RedeliveryCount
	p.DeadlineUnixNano = unixNano(deadline)
}

// Output is one output of an invocation.
type Output struct {
	Payload []byte
	// Key is the output's key; empty means the input's key.
	Key string
	// Properties are to be added to the forwarded input properties.
	Properties map[string]string
	// EventTime, when not zero, replaces the input's event time.
	EventTime time.Time
}

// Metric is one user metric observation (FunctionContext.RecordMetric).
type Metric struct {
	Name  string
	Value float64
}

// EventKind says which field of an Event is set.
type EventKind int

// The kinds of Event.
const (
	EventOutput EventKind = iota + 1 // Event.Output is set
	EventMetric                      // Event.Metric is set
	EventAck                         // the function acked its input (Info.ManualAck only)
)

// Event is one thing an invocation produced before it finished, delivered in the order the
// function produced it.
type Event struct {
	Kind   EventKind
	Output Output
	Metric Metric
	// Last marks the output the function returned (EventOutput): no output follows it. The
	// outputs a function emits before it returns are not marked, nor is a returned output
	// that came over the gRPC stream, which does not tell it apart.
	Last bool
}

// Kind says how an invocation that ran (or was skipped for its deadline) ended.
type Kind int

// The kinds of Result.
const (
	KindNone     Kind = iota // the function succeeded
	KindUser                 // the function returned an error
	KindPanic                // the function panicked (the plugin keeps serving)
	KindDeadline             // the deadline passed, before the function ran or while it ran
	KindCanceled             // the invocation was cancelled (by the host, or the plugin stopping)
)

// String returns the kind's name: none, user, panic, deadline or canceled.
func (k Kind) String() string {
	switch k {
	case KindNone:
		return "none"
	case KindUser:
		return "user"
	case KindPanic:
		return "panic"
	case KindDeadline:
		return "deadline"
	case KindCanceled:
		return "canceled"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Result is how an invocation ended.
type Result struct {
	Kind Kind
	// Error is the function's error text; empty for KindNone.
	Error string
	// Stack is the goroutine stack of a panic (KindPanic).
	Stack string
	// Outputs counts the outputs delivered to the event callback.
	Outputs int
}

// Err returns nil for KindNone, else a *FunctionError.
func (r Result) Err() error {
	if r.Kind == KindNone {
		return nil
	}
	return &FunctionError{Kind: r.Kind, Message: r.Error}
}

// FunctionError is an invocation's failure inside the function: an error it returned, a panic,
// its deadline, or its cancellation.
type FunctionError struct {
	Kind    Kind
	Message string
}

// Error returns the kind and the function's error text.
func (e *FunctionError) Error() string {
	return fmt.Sprintf("function failed (%s): %s", e.Kind, e.Message)
}

// Health is the plugin's own view of itself.
type Health struct {
	// Serving is true once configured and until drained.
	Serving     bool
	InFlight    int
	MaxInFlight int
	// Served counts the invocations finished since the plugin started, whatever their outcome.
	Served uint64
}

// Errors of the host side. An Invoke that returns one of them did not produce a Result: the
// function may or may not have run (redeliver the input).
var (
	// ErrExited: the plugin process exited, or the connection to it broke. The Process is
	// unusable: Kill it and start another.
	ErrExited = errors.New("plugin: process exited or connection lost")
	// ErrDraining: Drain was called; no new invocation is accepted.
	ErrDraining = errors.New("plugin: draining, not accepting invocations")
	// ErrClosed: Close or Kill was called.
	ErrClosed = errors.New("plugin: closed")
	// ErrNotConfigured: Configure has not succeeded yet.
	ErrNotConfigured = errors.New("plugin: not configured")
)

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
