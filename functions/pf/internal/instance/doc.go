// Package instance runs a function as a Pulsar Functions Go instance, the way the functions
// worker launches it: `<binary> -instance-conf '<json>'` (or -instance-conf-path <yaml>, with
// the same keys, for local runs). It is what `pulsar-admin functions create --go` runs, and it
// behaves like a binary built with Apache's pulsar-function-go, with its known gaps closed.
//
// # Configuration
//
// The worker's GoInstanceConfig keys are read as the worker writes them (nameSpace,
// instanceID, sinkSpecsTopic, …); unknown keys are ignored. The "functionDetails" key (the
// whole FunctionDetails as protobuf-JSON) is preferred over the flat keys and parsed with
// unknown fields discarded; without it the flat keys are used, with sourceInputSpecs values
// parsed as protobuf-JSON ConsumerSpecs. A malformed value is an error naming the key,
// returned before any connection. Settings the instance cannot honour are refused at start
// with the reason (EFFECTIVELY_ONCE, autoAck=false without MANUAL, schemas other than bytes,
// encryption, skipToLatest, authentication plugins other than token, TLS and OAuth2);
// settings without effect in Go (serde classes, secrets, thread-local producers) are logged
// as warnings.
//
// The worker refuses maxMessageRetries and deadLetterTopic for Go functions, so these
// userConfig keys configure retries instead (they override retryDetails when both are set):
//
//	fnhost.maxMessageRetries  integer ≥ 0: a failed input is delivered at most 1+N times, then
//	                          moved to the dead-letter topic (needs a Shared or Key_Shared
//	                          subscription: the broker counts redeliveries only there)
//	fnhost.deadLetterTopic    string: the dead-letter topic (default
//	                          <input topic>-<subscription>-DLQ); needs maxMessageRetries
//	fnhost.retryBackoff       Go duration: the first redelivery delay, doubling on each
//	                          retry up to 10 minutes (default: negativeAckRedeliveryDelayMs,
//	                          else 1 minute, constant)
//	fnhost.concurrency        integer 1…1024 (default 1, as upstream): inputs processed at once
//
// The dead-letter topic gets no subscription from the instance: create one before relying on
// its messages being retained.
//
// # Processing
//
// One consumer per input (a regex input subscribes by pattern); every input is acked or
// nacked through the consumer that delivered it. The subscription type follows
// retainOrdering (Failover), retainKeyOrdering (Key_Shared), else the source's type, else
// Shared. Inputs are processed by fnhost.concurrency workers; inputs with the same key (the
// ordering key, else the key) always go to the same worker, so per-key order holds, and with
// one worker (the default, and always under retainOrdering) all order holds. Outputs are
// published asynchronously, so the next input is processed while the previous one's outputs
// are in flight.
//
// Guarantees: ATMOST_ONCE acks on receipt; ATLEAST_ONCE acks once the function returned and
// every output is persisted; MANUAL leaves acking to the function (FunctionContext.Ack). A
// function error or panic is a user exception: counted, logged, the input nacked (ATLEAST_ONCE
// and MANUAL unless already acked); never a process exit. A publish failure is retried with
// backoff when transient; a final failure is a system exception and nacks the input.
// timeoutMs bounds each call of the function (its context's deadline).
//
// Outputs carry the input's key (and ordering key) unless the output sets its own, the
// input's event time unless set, the input's properties when forwardSourceMessageProperty
// (except fnhost's reply-to, deadline and reply properties, which address this invocation
// only), the output's own properties, and __pfn_input_topic__ / __pfn_input_msg_id__, so
// `pulsar-admin functions trigger` finds them.
//
// fnhost invocations (package invocation): an input past its deadline is not processed and
// is answered with a final error; every output is also sent to the reply-to topic with the
// invocation id, seq and final properties; a function with no output sends one empty final
// message there; a failed call sends a final message with the error (on the last attempt
// when retries are configured).
//
// # Control and metrics
//
// The gRPC service proto.InstanceControl listens on :port before the broker is contacted,
// so the worker's health checks succeed while Pulsar connects. Prometheus text is served on
// :metricsPort at / and /metrics with Pulsar Functions' metric names and labels (instance_id
// is the instance index, latencies and times in milliseconds, _1min values reset every
// minute). With expectedHealthCheckInterval > 0 the instance stops itself after three
// intervals without a health check. The function's log records go to stderr as JSON and,
// with a log topic, to that topic (properties loglevel, instance, fqn), dropped rather than
// slowing the function when the topic cannot keep up.
//
// On SIGTERM the instance stops receiving, lets calls in progress finish and their outputs be
// persisted for up to 7 s, then closes consumers, producers, the client and the servers.
package instance
