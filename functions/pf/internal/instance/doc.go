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
//	                          moved to the dead-letter topic (0: after its first failure;
//	                          unset: retried forever; needs a Shared or Key_Shared
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
// Shared. The loop is package engine's, the same as the host runtime's: fnhost.concurrency
// lanes process inputs; under Failover one lane (all order holds), under Key_Shared an input's
// lane is chosen by its key (per-key order holds), under Shared the first free lane takes it
// (no order, as Shared promises none). Outputs are published asynchronously, so the next input
// is processed while the previous one's outputs are in flight. Settlement follows the rules of
// package engine's doc, which the host runtime shares.
//
// Guarantees, retries, deadlines, replies to fnhost invocations (package invocation) and the
// precedence of output properties are those of package engine's doc: ATMOST_ONCE acks on
// receipt; ATLEAST_ONCE acks once every output is persisted; MANUAL leaves acking to the
// function (FunctionContext.Ack); a function error or panic is a user exception, never a
// process exit; timeoutMs bounds each call; an input past its caller's deadline is not run.
// A publish failure is retried with backoff when transient.
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
