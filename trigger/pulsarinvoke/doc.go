// Package pulsarinvoke is the trigger's Invoker and Publisher over Pulsar topics (DESIGN §3,
// §5): an HTTP call becomes a message on the function's input topic, and the function's
// outputs come back from Pulsar, whether the function runs in fnhost's host runtime or was
// deployed into Pulsar Functions.
//
// # Request
//
// Invoke finds the function in the manifests (Config.Functions), else through the admin API
// (/admin/v3/functions/{tenant}/{namespace}/{name}, cached for Config.CacheTTL), and publishes
// the request to its first input topic with the request's key and properties plus the
// correlation properties of functions/pf/invocation: ID, ReplyTo (this invoker's reply topic),
// Deadline (Unix ms), content-type, traceparent and tracestate. Producers are cached per
// topic; an invocation's input is sent at once, not at the next batching tick (messages of
// the topics route, which nobody waits on, are batched for Config.BatchingDelay). The call is
// registered before the message is published, so no reply can beat it; at most
// Config.MaxPending calls wait at once (beyond: trigger.ErrOverloaded, 429).
//
// # Replies
//
// One consumer on the reply topic routes each reply to its call by invocation id. A call hands
// its outputs over in seq order: a reply that comes early waits for the ones before it, a seq
// already seen (a redelivery, or a retried attempt resending) is ignored, and the reply marked
// final ends the call. An empty final reply is an end marker, not an output: SDK functions send
// one when they have no (more) output, and with Error set when they failed (then the
// invocation fails with trigger.KindUser, or KindDeadline once the deadline has passed). A
// reply for no waiting call (unknown, finished, expired) is dropped and counted (Stats).
// A caller that does not take its outputs may hold at most Config.MaxBufferedBytes.
//
// The deadline is the request's: when ctx ends first, Invoke returns ctx's error (504).
//
// # Fallback for functions not built with fnhost's SDK
//
// Java, Python and upstream Go functions never write to reply-to. For them the invoker also
// reads the function's output topic (a reader from its end, started on first use, closed once
// no call has waited on it for Config.FallbackIdle, reopened on demand) and matches
// the outputs whose __pfn_input_msg_id__ names the published request (ledger, entry and batch
// index, whichever of Java's and the Go client's layouts it uses). Such a function yields one
// output per input: it is handed over as the only output, final. The rule:
//
//   - an output-topic message carrying invocation.Seq comes from an fnhost function, whose
//     reply-to replies are authoritative: it is ignored;
//   - any other match ends the call with that output, unless a reply-to reply came first.
//
// Which functions are watched: Config.Fallback (default FallbackAuto: those found through the
// admin API, not those from manifests, which fnhost builds with its SDK), overridden per
// function by Config.FallbackFor. A function without output topic is never watched.
//
// # Pulsar unavailable
//
// A publish that fails (the producer's send timeout, Config.SendTimeout, or a producer that
// cannot be created) is trigger.ErrUnavailable (503). From then on the invoker refuses at once
// and lets one request through per Config.ProbeInterval as a probe; the first one that is
// published ends the outage. The client reconnects by itself; nothing needs a restart.
package pulsarinvoke
