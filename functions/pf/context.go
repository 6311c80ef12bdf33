package pf

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
)

// FunctionContext is what a function knows about itself and its current input. Get it with
// FromContext. Its accessors are upstream pulsar-function-go's, so functions written for
// Apache's SDK compile unchanged; Emit, InputKey, InputProperties, Logger and Ack are fnhost
// extensions.
//
// A FunctionContext belongs to one invocation; do not keep it after the function returns.
type FunctionContext struct {
	env call.Env
	inv *call.Invocation
}

type contextKey struct{}

// NewContext returns a copy of parent that carries fc.
func NewContext(parent context.Context, fc *FunctionContext) context.Context {
	return context.WithValue(parent, contextKey{}, fc)
}

// FromContext returns the FunctionContext of the current invocation, and false when ctx is not
// a function's context.
func FromContext(ctx context.Context) (*FunctionContext, bool) {
	fc, ok := ctx.Value(contextKey{}).(*FunctionContext)
	return fc, ok && fc != nil
}

func (c *FunctionContext) info() *call.Info { return c.env.Info() }

// GetInstanceID returns the index of this instance among the function's parallel instances.
func (c *FunctionContext) GetInstanceID() int { return c.info().InstanceID }

// GetInputTopics returns the input topics as configured.
func (c *FunctionContext) GetInputTopics() []string {
	return append([]string(nil), c.info().InputTopics...)
}

// GetOutputTopic returns the output topic, or "" when the function has none.
func (c *FunctionContext) GetOutputTopic() string { return c.info().OutputTopic }

// GetTenantAndNamespace returns tenant/namespace.
func (c *FunctionContext) GetTenantAndNamespace() string {
	return c.info().Tenant + "/" + c.info().Namespace
}

// GetTenantAndNamespaceAndName returns tenant/namespace/name.
func (c *FunctionContext) GetTenantAndNamespaceAndName() string { return c.info().FQFN() }

// GetFuncTenant returns the function's tenant.
func (c *FunctionContext) GetFuncTenant() string { return c.info().Tenant }

// GetFuncNamespace returns the function's namespace.
func (c *FunctionContext) GetFuncNamespace() string { return c.info().Namespace }

// GetFuncName returns the function's name.
func (c *FunctionContext) GetFuncName() string { return c.info().Name }

// GetFuncID returns the function id the worker assigned (a fresh UUID at every start).
func (c *FunctionContext) GetFuncID() string { return c.info().FuncID }

// GetFuncVersion returns the function version the worker assigned.
func (c *FunctionContext) GetFuncVersion() string { return c.info().FuncVersion }

// GetPort returns the gRPC InstanceControl port (instance mode; 0 otherwise).
func (c *FunctionContext) GetPort() int { return c.info().Port }

// GetClusterName returns the Pulsar cluster's name.
func (c *FunctionContext) GetClusterName() string { return c.info().ClusterName }

// GetExpectedHealthCheckInterval returns the health-check interval in seconds (0: none).
func (c *FunctionContext) GetExpectedHealthCheckInterval() int32 {
	return c.info().ExpectedHealthCheckInterval
}

// GetExpectedHealthCheckIntervalAsDuration returns the health-check interval. Unlike upstream,
// which returns the number of seconds as nanoseconds, it is a correct time.Duration.
func (c *FunctionContext) GetExpectedHealthCheckIntervalAsDuration() time.Duration {
	return time.Duration(c.info().ExpectedHealthCheckInterval) * time.Second
}

// GetMaxIdleTime returns three health-check intervals, in nanoseconds, as upstream does.
func (c *FunctionContext) GetMaxIdleTime() int64 {
	return int64(3 * c.GetExpectedHealthCheckIntervalAsDuration())
}

// GetMetricsPort returns the Prometheus metrics port (instance mode; 0 otherwise).
func (c *FunctionContext) GetMetricsPort() int { return c.info().MetricsPort }

// GetUserConfValue returns the userConfig value for key, nil when absent. JSON numbers are
// float64.
func (c *FunctionContext) GetUserConfValue(key string) any { return c.info().UserConfig[key] }

// GetUserConfMap returns a copy of the whole userConfig map.
func (c *FunctionContext) GetUserConfMap() map[string]any { return maps.Clone(c.info().UserConfig) }

// SetCurrentRecord replaces the current input record, as upstream allows.
func (c *FunctionContext) SetCurrentRecord(record pulsar.Message) { c.inv.Message = record }

// GetCurrentRecord returns the current input: its id, key, properties, event time, topic and
// payload.
func (c *FunctionContext) GetCurrentRecord() pulsar.Message { return c.inv.Message }

// NewOutputMessage returns a producer for topic. Unlike upstream, producers are cached (one
// per topic for the life of the instance, closed by the SDK: do not Close it), and a failure
// does not exit the process: it is logged and nil is returned. Prefer
// NewOutputMessageWithError.
func (c *FunctionContext) NewOutputMessage(topic string) pulsar.Producer {
	p, err := c.env.Producer(topic)
	if err != nil {
		c.env.Logger().Error("creating output producer", "topic", topic, "err", err)
		return nil
	}
	return p
}

// NewOutputMessageWithError returns the cached producer for topic, creating it on first use.
// The SDK owns it: do not Close it.
func (c *FunctionContext) NewOutputMessageWithError(topic string) (pulsar.Producer, error) {
	return c.env.Producer(topic)
}

// RecordMetric observes value into the user metric name (pulsar_function_user_metric).
func (c *FunctionContext) RecordMetric(name string, value float64) {
	c.env.RecordMetric(name, value)
}

// Emit sends payload as one more output of the current input, now, before the function
// returns: several outputs for one input make a stream. The output carries the input's key and
// forwarded properties like the returned output does. A returned []byte, if not nil, is sent
// after every emitted output.
func (c *FunctionContext) Emit(ctx context.Context, payload []byte) error {
	return c.inv.Emit(ctx, call.Output{Payload: payload})
}

// Output is an output with its own key, properties or event time, for EmitOutput.
type Output struct {
	Payload []byte
	// Key is the message key; empty keeps the input's key.
	Key string
	// Properties are added to the forwarded input properties.
	Properties map[string]string
	// EventTime replaces the input's event time when set.
	EventTime time.Time
}

// EmitOutput is Emit with a key, properties or event time of the output's own.
func (c *FunctionContext) EmitOutput(ctx context.Context, out Output) error {
	return c.inv.Emit(ctx, call.Output(out))
}

// InputKey returns the key of the current input ("" when it has none).
func (c *FunctionContext) InputKey() string { return c.inv.Message.Key() }

// InputProperties returns a copy of the current input's properties.
func (c *FunctionContext) InputProperties() map[string]string {
	return maps.Clone(c.inv.Message.Properties())
}

// Logger returns the function's structured logger; its records carry the function's name.
func (c *FunctionContext) Logger() *slog.Logger { return c.env.Logger() }

// ErrNotManual is returned by Ack when the processing guarantee is not MANUAL: the SDK then
// acknowledges inputs itself.
var ErrNotManual = errors.New("pf: Ack needs processingGuarantees MANUAL")

// Ack acknowledges the current input. Only for processingGuarantees MANUAL, where the SDK never
// acknowledges on its own (upstream offers no way to ack at all).
func (c *FunctionContext) Ack() error {
	if c.inv.Ack == nil {
		return ErrNotManual
	}
	return c.inv.Ack()
}

// Emit sends payload as one more output of the invocation ctx belongs to; see
// FunctionContext.Emit.
func Emit(ctx context.Context, payload []byte) error {
	fc, ok := FromContext(ctx)
	if !ok {
		return errors.New("pf: Emit called outside a function invocation")
	}
	return fc.Emit(ctx, payload)
}
