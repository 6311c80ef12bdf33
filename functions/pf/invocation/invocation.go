// Package invocation names the message properties that tie an HTTP call to the outputs of the
// function it invoked (DESIGN §3). The trigger sets the request properties; the SDK and the
// host runtime set the reply properties. Every part imports the names from here, never spells
// them itself.
package invocation

import "time"

// Request properties, set by the trigger on the input message.
const (
	// ID is the unique id of one invocation; it is also returned to the HTTP caller.
	ID = "fnhost-invocation-id"
	// ReplyTo is a topic where the outputs of this invocation are also sent.
	ReplyTo = "fnhost-reply-to"
	// Deadline is the absolute deadline in Unix milliseconds (decimal). A function past it
	// skips the work and replies with a timeout error.
	Deadline = "fnhost-deadline"
)

// Reply properties, set on every output sent to ReplyTo (and on the output topic).
const (
	// Seq numbers the outputs of one invocation 0, 1, 2, … (decimal).
	Seq = "fnhost-seq"
	// Final is "true" on the last output of an invocation. A function with no output still
	// sends one final message, with an empty payload.
	Final = "fnhost-final"
	// Error carries the error text on a failed invocation's final message.
	Error = "fnhost-error"
	// End is "true" on a final message that is not an output: it only ends the invocation
	// (a function with no more output) or carries its Error. Without it, an empty final
	// message would be ambiguous with an empty last output.
	End = "fnhost-end"
	// Attempt is the redelivery count of the input an output answers (decimal; absent on the
	// first delivery). A retried input starts its outputs again at seq 0 with a higher
	// attempt: the caller discards what an earlier attempt sent, so the outputs of a failed
	// attempt never mix with those of the retry.
	Attempt = "fnhost-attempt"
)

// Properties both sides set.
const (
	// ContentType is the media type of the payload.
	ContentType = "content-type"
	// TraceParent and TraceState carry W3C trace context across topics.
	TraceParent = "traceparent"
	TraceState  = "tracestate"
)

// ReplyBatchingDelay is the batching delay of the producers that publish to ReplyTo topics, in
// the host runtime and in the SDK's instance. A caller waits on every reply, so a reply waits
// at most 1 ms for others to share its batch, not the 10 ms of Pulsar Functions' output
// producers (which the output topic keeps).
const ReplyBatchingDelay = time.Millisecond

// Pulsar Functions' own properties on outputs, which `pulsar-admin functions trigger` and the
// trigger's fallback for functions not built with this SDK match on.
const (
	// InputTopic is the topic of the input message an output answers.
	InputTopic = "__pfn_input_topic__"
	// InputMessageID is the base64 (standard encoding) of the serialized input message id.
	InputMessageID = "__pfn_input_msg_id__"
)

// DropPerInvocation deletes from props, in place, the properties that address one invocation:
// the request properties of its caller (a function fed by an output must not reply to that
// caller) and the reply properties, which each invocation sets itself. Outputs that forward
// their input's properties forward the rest.
func DropPerInvocation(props map[string]string) {
	for _, k := range [...]string{ReplyTo, Deadline, Seq, Final, Error, End, Attempt} {
		delete(props, k)
	}
}
