package trigger

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"unicode/utf8"
)

// streamer writes outputs to a caller as they come: Server-Sent Events or NDJSON.
// Every event is flushed as soon as it is written.
type streamer interface {
	// begin writes the status line and headers (200).
	begin()
	output(o Output) error
	end(e *streamEnd) error
	keepAlive() error
}

// newStreamer returns the streamer of mode m. attempt is the attempt of the outputs the caller
// has already seen (0 on a new stream): an output of another attempt is preceded by a restart
// event.
func newStreamer(m mode, w http.ResponseWriter, id string, attempt int) streamer {
	if m == modeNDJSON {
		return &ndjsonStreamer{w: w, id: id, attempt: attempt}
	}
	return &sseStreamer{w: w, id: id, attempt: attempt}
}

func flush(w http.ResponseWriter) error {
	if err := http.NewResponseController(w).Flush(); err != nil {
		return fmt.Errorf("flushing the stream: %w", err)
	}
	return nil
}

// sseStreamer writes text/event-stream. An output is "event: output" with "id: <seq>" and its
// payload as data lines when it is UTF-8 without CR (SSE would turn CR into a line break); any
// other payload is "event: output-base64" with one data line of standard base64. The stream
// ends with "event: done" (data {"invocation_id","outputs"}) or "event: error" (data: the
// error object of the JSON error body).
//
// When the function is retried after outputs of a failed attempt were streamed, the retry's
// first output is preceded by "event: restart" (data {"invocation_id","attempt"}): the outputs
// before it are superseded. Event ids keep increasing across attempts, so Last-Event-ID stays
// exact.
type sseStreamer struct {
	w       http.ResponseWriter
	id      string
	attempt int
	buf     bytes.Buffer
}

func (s *sseStreamer) begin() {
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	s.w.WriteHeader(http.StatusOK)
}

func (s *sseStreamer) output(o Output) error {
	s.buf.Reset()
	if o.Attempt != s.attempt {
		s.attempt = o.Attempt
		fmt.Fprintf(&s.buf, "event: restart\ndata: {\"invocation_id\":%q,\"attempt\":%d}\n\n", s.id, o.Attempt)
	}
	writeSSEOutput(&s.buf, o)
	return s.send()
}

// writeSSEOutput appends one output event to b.
func writeSSEOutput(b *bytes.Buffer, o Output) {
	b.WriteString("id: ")
	b.WriteString(strconv.FormatInt(o.Seq, 10))
	if utf8.Valid(o.Payload) && bytes.IndexByte(o.Payload, '\r') < 0 {
		b.WriteString("\nevent: output\n")
		for line := range bytes.SplitSeq(o.Payload, []byte{'\n'}) {
			b.WriteString("data: ")
			b.Write(line)
			b.WriteByte('\n')
		}
	} else {
		b.WriteString("\nevent: output-base64\ndata: ")
		b.WriteString(base64.StdEncoding.EncodeToString(o.Payload))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
}

func (s *sseStreamer) end(e *streamEnd) error {
	s.buf.Reset()
	if e.Attempt != s.attempt {
		s.attempt = e.Attempt
		fmt.Fprintf(&s.buf, "event: restart\ndata: {\"invocation_id\":%q,\"attempt\":%d}\n\n", s.id, e.Attempt)
	}
	if e.Err != nil {
		s.buf.WriteString("event: error\ndata: ")
		body, err := json.Marshal(e.Err)
		if err != nil {
			return fmt.Errorf("encoding the stream's error: %w", err)
		}
		s.buf.Write(body)
	} else {
		fmt.Fprintf(&s.buf, "event: done\ndata: {\"invocation_id\":%q,\"outputs\":%d}", s.id, e.Outputs)
	}
	s.buf.WriteString("\n\n")
	return s.send()
}

func (s *sseStreamer) keepAlive() error {
	s.buf.Reset()
	s.buf.WriteString(": keep-alive\n\n")
	return s.send()
}

func (s *sseStreamer) send() error {
	if _, err := s.w.Write(s.buf.Bytes()); err != nil {
		return fmt.Errorf("writing the event stream: %w", err)
	}
	return flush(s.w)
}

// ndjsonStreamer writes application/x-ndjson: one JSON output per line (see outputJSON), then
// {"done":true,"invocation_id":…,"outputs":n} or {"done":true,"invocation_id":…,"error":{…}}.
// A retry's first output is preceded by {"restart":true,"invocation_id":…,"attempt":n}: the
// lines before it are superseded.
type ndjsonStreamer struct {
	w       http.ResponseWriter
	id      string
	attempt int
}

type ndjsonRestart struct {
	Restart      bool   `json:"restart"`
	InvocationID string `json:"invocation_id"`
	Attempt      int    `json:"attempt"`
}

type ndjsonEnd struct {
	Done         bool      `json:"done"`
	InvocationID string    `json:"invocation_id"`
	Outputs      int64     `json:"outputs"`
	Error        *apiError `json:"error,omitempty"`
}

func (s *ndjsonStreamer) begin() {
	s.w.Header().Set("Content-Type", mediaNDJSON)
	s.w.Header().Set("Cache-Control", "no-cache")
	s.w.Header().Set("X-Accel-Buffering", "no")
	s.w.WriteHeader(http.StatusOK)
}

func (s *ndjsonStreamer) output(o Output) error {
	if o.Attempt != s.attempt {
		s.attempt = o.Attempt
		if err := s.line(ndjsonRestart{Restart: true, InvocationID: s.id, Attempt: o.Attempt}); err != nil {
			return err
		}
	}
	return s.line(o)
}

func (s *ndjsonStreamer) end(e *streamEnd) error {
	if e.Attempt != s.attempt {
		s.attempt = e.Attempt
		if err := s.line(ndjsonRestart{Restart: true, InvocationID: s.id, Attempt: e.Attempt}); err != nil {
			return err
		}
	}
	return s.line(ndjsonEnd{Done: true, InvocationID: s.id, Outputs: e.Outputs, Error: e.Err})
}

// keepAlive writes an empty line, which NDJSON readers skip.
func (s *ndjsonStreamer) keepAlive() error {
	if _, err := s.w.Write([]byte{'\n'}); err != nil {
		return fmt.Errorf("writing the stream: %w", err)
	}
	return flush(s.w)
}

func (s *ndjsonStreamer) line(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding a stream line: %w", err)
	}
	if _, err := s.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("writing the stream: %w", err)
	}
	return flush(s.w)
}
