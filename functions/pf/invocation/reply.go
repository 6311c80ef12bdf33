package invocation

import (
	"fmt"
	"strconv"
	"time"
)

// Request is what an input asks of its invocation through the request properties, and which
// delivery of the input this is.
type Request struct {
	// ID is the invocation id; empty when the input was not sent by a trigger.
	ID string
	// ReplyTo is the topic outputs are also sent to; empty for none.
	ReplyTo string
	// Deadline is the invocation's deadline; zero for none.
	Deadline time.Time
	// Attempt is the input's redelivery count: 0 on its first delivery, n on its n-th retry.
	Attempt int
}

// ParseRequest reads the request properties of an input that the broker delivered for the
// (redeliveries+1)-th time. A malformed deadline is an error naming the property; the rest of
// the request is still returned, so the function can run without a deadline.
func ParseRequest(props map[string]string, redeliveries uint32) (Request, error) {
	r := Request{ID: props[ID], ReplyTo: props[ReplyTo], Attempt: int(redeliveries)}
	if s := props[Deadline]; s != "" {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return r, fmt.Errorf("property %s: want Unix milliseconds, got %q", Deadline, s)
		}
		r.Deadline = time.UnixMilli(ms)
	}
	return r, nil
}

// Correlated reports whether the outputs must carry the reply properties: the input came from
// a caller that waits for them.
func (r Request) Correlated() bool { return r.ID != "" || r.ReplyTo != "" }

// Replies numbers the outputs of one attempt of an invocation and sets the reply properties
// on them. It is not safe for concurrent use: an invocation's outputs are stamped in order.
type Replies struct {
	req  Request
	next int
}

// NewReplies returns the numbering of req's outputs, starting at seq 0.
func NewReplies(req Request) *Replies { return &Replies{req: req} }

// Next is the seq the next output or end marker gets.
func (r *Replies) Next() int { return r.next }

// Output sets on props the reply properties of the next output and returns its seq. final
// marks the invocation's last output; errText, when not empty, is the error of a failed
// invocation (then the output is final too, or an end marker follows).
func (r *Replies) Output(props map[string]string, final bool, errText string) int {
	seq := r.next
	r.next++
	if r.req.ID != "" {
		props[ID] = r.req.ID
	}
	props[Seq] = strconv.Itoa(seq)
	if r.req.Attempt > 0 {
		props[Attempt] = strconv.Itoa(r.req.Attempt)
	}
	if final {
		props[Final] = "true"
	}
	if errText != "" {
		props[Error] = errText
	}
	return seq
}

// End sets on props the properties of the message that ends the invocation without being an
// output: sent when the function returned with no (more) output, or with errText when it
// failed. It returns the message's seq.
func (r *Replies) End(props map[string]string, errText string) int {
	props[End] = "true"
	return r.Output(props, true, errText)
}

// Reply is what the reply properties of a message say.
type Reply struct {
	ID      string
	Seq     int64
	Attempt int
	Final   bool
	// Error is the error text of a failed invocation, on its final message.
	Error string
	// Output is false for an end marker (End, or a message carrying Error): it is not one of
	// the function's outputs. Every other reply is, an empty one included.
	Output bool
}

// ParseReply reads the reply properties of a message. ok is false when the message carries no
// invocation id or no valid seq: it answers no invocation.
func ParseReply(props map[string]string) (r Reply, ok bool) {
	seq, err := strconv.ParseInt(props[Seq], 10, 64)
	r.ID = props[ID]
	if r.ID == "" || err != nil || seq < 0 {
		return Reply{}, false
	}
	r.Seq = seq
	if s := props[Attempt]; s != "" {
		a, err := strconv.Atoi(s)
		if err != nil || a < 0 {
			return Reply{}, false
		}
		r.Attempt = a
	}
	r.Final = props[Final] == "true"
	r.Error = props[Error]
	r.Output = props[End] != "true" && r.Error == ""
	return r, true
}
