package trigger

import (
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// handleRecord serves GET /v1/invocations/:id.
func (s *Server) handleRecord(c *gin.Context) {
	id := c.Param("id")
	rec, err := Invocation{}, ErrInvocationNotFound
	if validID(id) {
		rec, err = s.store.Get(c.Request.Context(), id)
	}
	switch {
	case errors.Is(err, ErrInvocationNotFound):
		s.writeError(c, newAPIError(http.StatusNotFound, codeInvocationNotFound,
			"no invocation %q (records of async invocations are kept for %s)", id, s.cfg.RecordTTL))
		return
	case err != nil:
		e := newAPIError(http.StatusServiceUnavailable, codeUnavailable, "reading invocation %s: %v", id, err)
		e.retryAfter = true
		s.writeError(c, e)
		return
	}
	c.Header(headerInvocationID, id)
	c.Header(headerOutputCount, itoa(len(rec.Outputs)))
	if rec.Outputs == nil {
		rec.Outputs = []Output{}
	}
	c.JSON(http.StatusOK, rec)
}

// handleEvents serves GET /v1/invocations/:id/events: the outputs of a streamed or async
// invocation after Last-Event-ID, then live ones while it runs, then its end.
func (s *Server) handleEvents(c *gin.Context) {
	id := c.Param("id")
	after, err := parseLastEventID(c.GetHeader(headerLastEventID))
	if err != nil {
		s.writeError(c, newAPIError(http.StatusBadRequest, codeInvalidHeader, "%v", err))
		return
	}
	var j *journal
	if validID(id) {
		j = s.journals.get(id)
	}
	if j == nil && validID(id) {
		j = s.journalFromRecord(c, id)
	}
	if j == nil {
		s.writeError(c, newAPIError(http.StatusNotFound, codeInvocationNotFound,
			"no events of invocation %q: only streamed and async invocations are kept, for %s after they end",
			id, s.cfg.ReplayTTL))
		return
	}
	if _, _, _, ok := j.since(after); !ok {
		e := newAPIError(http.StatusGone, codeReplayExpired,
			"outputs after %d of invocation %s are no longer in the replay buffer", after, id)
		e.InvocationID = id
		s.writeError(c, e)
		return
	}
	m := negotiate(c.GetHeader("Accept"))
	if m != modeNDJSON {
		m = modeSSE
	}
	c.Header(headerInvocationID, id)
	st := newStreamer(m, c.Writer, id, j.attemptAt(after))
	st.begin()
	err = j.follow(c.Request.Context(), after, s.cfg.SSEKeepAlive, st.output, st.end, st.keepAlive)
	if err != nil {
		s.log.Debug("event stream ended early", "invocation_id", id, "err", err)
	}
}

// journalFromRecord rebuilds the journal of a finished invocation from its record, so its
// events outlive the replay buffer as long as the record lives. nil if there is none.
func (s *Server) journalFromRecord(c *gin.Context, id string) *journal {
	rec, err := s.store.Get(c.Request.Context(), id)
	if err != nil || !rec.Status.Final() {
		return nil
	}
	j := &journal{id: id, fn: rec.Function, maxEvts: len(rec.Outputs) + 1, maxBytes: 1<<63 - 1, change: make(chan struct{})}
	if len(rec.Outputs) > 0 {
		// The record holds the last attempt's outputs, numbered as the live stream did: what
		// came before them was a failed attempt's, superseded.
		j.base, j.superseded = rec.Outputs[0].Seq, rec.Outputs[0].Seq
	}
	if rec.Attempt > 0 {
		j.dropped = -1 // the failed attempts' outputs are not here: a resume among them restarts
	}
	for _, o := range rec.Outputs {
		j.append(o)
	}
	end := &streamEnd{Outputs: int64(len(rec.Outputs)), Attempt: rec.Attempt}
	if rec.Error != nil {
		status := http.StatusBadGateway
		if rec.Status == StatusTimedOut {
			status = http.StatusGatewayTimeout
		}
		end.Err = &apiError{Status: status, Code: rec.Error.Code, Message: rec.Error.Message, InvocationID: id}
	}
	j.finish(end, time.Now())
	return j
}
