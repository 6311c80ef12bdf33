// Package engine is the Pulsar Functions loop of fnhost, written once: it receives inputs,
// invokes the function, publishes its outputs and replies, and settles each input (ack, nack,
// dead letter), with the processing guarantees, retries, ordering lanes, deadlines,
// correlation properties and metrics of Pulsar Functions. Both launchers are thin adapters
// over it: the SDK's Pulsar Functions instance (functions/pf/internal/instance) and the host
// runtime (runtime/host).
//
// It talks to the world through three ports it defines: a Source of deliveries (Receive, Ack,
// Nack: a pulsar.Consumer is one), a Sink that publishes a message and calls back with the
// outcome (PulsarSink over package producer's cache), and the Function (the user's handler in
// process, or a pool of plugin processes).
//
// # Ordering
//
// Lanes run invocations, each lane one at a time. A Failover or Exclusive subscription
// (retainOrdering) runs one lane: strict order. Key_Shared (retainKeyOrdering) picks an
// input's lane by its ordering key (else its key): each key keeps its order. Shared gives
// every input to the first free lane: no order, and one slow input holds up nothing.
//
// # Settlement
//
// Every input is settled exactly once, by these rules, whichever launcher runs it:
//
//  1. Receipt. ATMOST_ONCE acknowledges an input on receipt; nothing later acks or nacks it.
//  2. Caller's deadline already passed. An input whose invocation deadline property
//     (invocation.Deadline) has passed before it starts is not run and not redelivered: it
//     is counted as a user exception, a final reply carrying the timeout error goes to its
//     reply-to topic, and it is acknowledged (MANUAL and EFFECTIVELY_ONCE too).
//  3. Deadlines while running. The function's context ends at the earlier of the caller's
//     deadline and the function's own timeoutMs. A run that fails after the caller's deadline
//     passed is settled like rule 2 (a retry would be skipped by it). A run that exceeds
//     timeoutMs is a user failure like any other (rule 5): it counts against
//     maxMessageRetries and is dead-lettered after them.
//  4. Success. Once every output is persisted the input is counted as processed and
//     acknowledged (ATLEAST_ONCE, EFFECTIVELY_ONCE); MANUAL leaves the ack to the function.
//  5. User failure (an error, a panic, timeoutMs). Counted as a user exception. With retries
//     left (MaxRetries < 0 is "retry forever", the only spelling; n ≥ 0 allows n
//     redeliveries) the input is negatively acknowledged and redelivered with the source's
//     backoff. On its last try it is negatively acknowledged too, and the consumer's
//     dead-letter policy moves it to the dead-letter topic (counted in
//     fnhost_retries_exhausted_total). EFFECTIVELY_ONCE never redelivers a failed input
//     (after newer inputs its outputs would be dropped as duplicates): it is acknowledged.
//     MANUAL does not nack an input the function acked.
//  6. Not run (the function could not be called: its process died or is unavailable).
//     Counted as a system exception and negatively acknowledged, not counted against
//     retries by the engine. EFFECTIVELY_ONCE runs it again in place, with backoff, before
//     the next input.
//  7. Outputs not persisted (after the sink's retries). Counted as a system exception and
//     negatively acknowledged.
//
// # Replies
//
// When the input carries an invocation id or a reply-to topic (DESIGN §3), every output is
// also sent to reply-to (once, when reply-to is the output topic) and carries the reply
// properties: invocation id, seq (0, 1, 2 … per attempt), attempt, final on the output the
// function returned, error on a failure. An invocation that ends without a final output (it
// returned none, or failed) sends reply-to a lone end message: final, end, and the error when
// it failed. A failure is reported to reply-to only when no retry follows, or when retries are
// unlimited (the caller would otherwise never hear).
//
// # Properties
//
// An output's properties are, lowest precedence first: the input's (with forwarding on), minus
// the per-invocation ones; the input's trace context (or the invocation span's); the
// function's own; then the correlation properties, always set last: __pfn_input_topic__,
// __pfn_input_msg_id__ and, for a correlated input, the reply properties. A function cannot
// overwrite or forge them: on an uncorrelated input the reply properties are removed.
//
// # Metrics
//
// Metrics keeps Pulsar Functions' metric families per instance (received, processed
// successfully, user and system exceptions, process latency, last invocation, the _1min
// windows, the latest exceptions, user metrics) plus fnhost's retries exhausted, outputs
// dropped and invocations in flight. Both launchers expose the same families.
package engine
