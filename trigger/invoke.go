package trigger

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
)

// invokeOptions are the parts of an invoke request that are not the function's input.
type invokeOptions struct {
	mode        mode
	callbackURL string
}

// handleInvoke serves POST /v1/functions/:tenant/:namespace/:name/invoke and POST /function/:name.
func (s *Server) handleInvoke(c *gin.Context) {
	fn := functionParams(c)
	if e := checkNames(fn.Tenant, fn.Namespace, fn.Name); e != nil {
		s.writeError(c, e)
		return
	}
	id := newID()
	c.Header(headerInvocationID, id)

	req, opts, e := s.parseInvoke(c, id)
	if e != nil {
		e.InvocationID = id
		s.writeError(c, e)
		return
	}
	switch opts.mode {
	case modeAsync:
		s.startAsync(c, fn, req, opts.callbackURL)
	case modeSSE, modeNDJSON:
		s.invokeStream(c, fn, req, opts.mode)
	default:
		s.invokeSync(c, fn, req)
	}
}

// functionParams returns the function a route's parameters name; /function/:name names one
// in public/default.
func functionParams(c *gin.Context) Function {
	fn := Function{Tenant: c.Param("tenant"), Namespace: c.Param("namespace"), Name: c.Param("name")}
	if fn.Tenant == "" {
		fn.Tenant, fn.Namespace = "public", "default"
	}
	return fn
}

func checkNames(names ...string) *apiError {
	for _, n := range names {
		if !validName(n) {
			return newAPIError(http.StatusBadRequest, codeInvalidName,
				"name %q: use 1-256 letters, digits and - _ . = :", n)
		}
	}
	return nil
}

// parseInvoke checks the headers, then reads the body.
func (s *Server) parseInvoke(c *gin.Context, id string) (*Request, invokeOptions, *apiError) {
	h := c.Request.Header
	bad := func(err error) (*Request, invokeOptions, *apiError) {
		return nil, invokeOptions{}, newAPIError(http.StatusBadRequest, codeInvalidHeader, "%v", err)
	}
	timeout, err := parseTimeout(h.Get(headerTimeout), s.cfg.DefaultTimeout, s.cfg.MaxTimeout)
	if err != nil {
		return bad(err)
	}
	props, err := parseProperties(h)
	if err != nil {
		return bad(err)
	}
	tp := h.Get(headerTraceParent)
	if err := parseTraceParent(tp); err != nil {
		return bad(err)
	}
	ct, err := parseContentType(h.Get("Content-Type"))
	if err != nil {
		return bad(err)
	}
	if h.Get(headerLastEventID) != "" {
		return bad(errors.New("Last-Event-ID on an invoke would start a new invocation; resume with GET /v1/invocations/{id}/events"))
	}
	cb, err := parseCallbackURL(h.Get(headerCallbackURL))
	if err != nil {
		return nil, invokeOptions{}, newAPIError(http.StatusBadRequest, codeInvalidCallbackURL, "%v", err)
	}
	if cb != "" {
		refusal, err := s.callback.checkURL(c.Request.Context(), cb)
		switch {
		case refusal != nil:
			return nil, invokeOptions{}, newAPIError(http.StatusBadRequest, codeInvalidCallbackURL, "X-Callback-Url %q: %v", cb, refusal)
		case err != nil:
			e := newAPIError(http.StatusServiceUnavailable, codeUnavailable, "X-Callback-Url: %v", err)
			e.retryAfter = true
			return nil, invokeOptions{}, e
		}
	}
	opts := invokeOptions{mode: negotiate(h.Get("Accept")), callbackURL: cb}
	// A callback URL implies respond-async: the result goes there, not in this response.
	if preferAsync(h.Values("Prefer")) || cb != "" {
		opts.mode = modeAsync
	}
	payload, e := s.readBody(c)
	if e != nil {
		return nil, invokeOptions{}, e
	}
	req := &Request{
		ID: id, Payload: payload, Key: h.Get(headerKey), Properties: props, ContentType: ct,
		Deadline: time.Now().Add(timeout), TraceParent: tp, TraceState: cleanTraceState(tp, h.Get(headerTraceState)),
	}
	req.TraceParent, req.TraceState = s.traceContext(c, req.TraceParent, req.TraceState)
	return req, opts, nil
}

// readBody reads the whole body, at most Config.MaxBodyBytes.
func (s *Server) readBody(c *gin.Context) ([]byte, *apiError) {
	tooLarge := func() *apiError {
		return newAPIError(http.StatusRequestEntityTooLarge, codePayloadTooLarge,
			"request body is larger than %d bytes", s.cfg.MaxBodyBytes)
	}
	n := c.Request.ContentLength
	if n > s.cfg.MaxBodyBytes {
		return nil, tooLarge()
	}
	var r io.Reader = c.Request.Body
	if n < 0 || n > 64<<10 {
		r = http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes)
	}
	var body []byte
	var err error
	if n >= 0 && n <= 64<<10 {
		// The usual case: a declared, small length (≤ MaxBodyBytes, checked above): one exact
		// allocation, and no MaxBytesReader, as net/http never yields more than declared. The
		// spare byte checks for the end all the same, in case a wrapper does.
		body = make([]byte, n, n+1)
		if _, err = io.ReadFull(r, body); err == nil {
			switch k, rerr := io.ReadFull(r, body[n:n+1]); {
			case errors.Is(rerr, io.EOF): // the whole body
			case rerr != nil:
				err = rerr
			default:
				var rest []byte
				rest, err = io.ReadAll(http.MaxBytesReader(c.Writer, io.NopCloser(r), s.cfg.MaxBodyBytes-n-int64(k)))
				body = append(body[:n+int64(k)], rest...)
			}
		}
	} else {
		body, err = io.ReadAll(r)
	}
	if err == nil {
		// Closed once read: otherwise net/http, before it writes the response, reads on to
		// discard what is left (nothing), through an io.LimitReader it allocates.
		_ = c.Request.Body.Close()
	} else {
		// Only here: the target of errors.As escapes, an allocation on every request.
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge()
		}
		return nil, newAPIError(http.StatusBadRequest, codeBodyUnreadable, "reading the request body: %v", err)
	}
	return body, nil
}

// acquire takes a synchronous slot, or answers 429.
func (s *Server) acquire(c *gin.Context, id string) bool {
	select {
	case s.slots <- struct{}{}:
		return true
	default:
		e := newAPIError(http.StatusTooManyRequests, codeTooManyRequests,
			"more than %d invocations in flight; retry later", s.cfg.MaxConcurrent)
		e.retryAfter, e.InvocationID = true, id
		s.writeError(c, e)
		return false
	}
}

func (s *Server) release() { <-s.slots }

// outcome turns what Invoke returned for req into how the invocation ended for the caller.
func outcome(req *Request, res Result, err error, outputs int64) *streamEnd {
	id := req.ID
	switch {
	case err != nil:
		if errors.Is(err, context.Canceled) && !time.Now().Before(req.Deadline) {
			err = context.DeadlineExceeded
		}
		return &streamEnd{Outputs: outputs, Err: invokeError(err, id)}
	case res.Err != nil:
		return &streamEnd{Outputs: outputs, Err: functionError(res.Err, id)}
	}
	return &streamEnd{Outputs: outputs}
}

// invokeSync runs the invocation and answers with its outputs: 204 for none, the bytes of a
// single one, a JSON array of several.
func (s *Server) invokeSync(c *gin.Context, fn Function, req *Request) {
	if !s.acquire(c, req.ID) {
		return
	}
	defer s.release()
	// The invoker enforces req.Deadline (see Invoker): a context.WithDeadline per call would
	// be a tenth of this handler's cost.
	ctx := c.Request.Context()

	col := &syncOutputs{s: s, fn: fn, id: req.ID, start: time.Now()}
	col.outs = col.first[:0]
	res, err := s.cfg.Invoker.Invoke(ctx, fn, req, col.emit)
	outs := col.outs
	if err == nil && len(outs) > 0 && outs[0].Attempt != res.Attempt {
		outs = nil // the retry that ended it emitted none: the failed attempt's are superseded
	}
	if err != nil || res.Err != nil {
		end := outcome(req, res, err, int64(len(outs)))
		s.logFailure(c, fn, req.ID, err, end.Err)
		s.writeError(c, end.Err)
		return
	}
	c.Header(headerOutputCount, strconv.Itoa(len(outs)))
	switch len(outs) {
	case 0:
		c.Status(http.StatusNoContent)
	case 1:
		o := outs[0]
		if o.Key != "" && validHeaderValue(o.Key) {
			c.Header(headerKey, o.Key)
		}
		for k, v := range o.Properties {
			if validToken(k) && validHeaderValue(v) {
				c.Header(headerPropPrefix+k, v)
			}
		}
		ct := o.ContentType
		if ct == "" {
			ct = req.ContentType
		}
		if ct == "" {
			ct = "application/octet-stream"
		}
		c.Data(http.StatusOK, ct, o.Payload)
	default:
		c.JSON(http.StatusOK, outs)
	}
}

// syncOutputs collects a synchronous invocation's outputs. It is one allocation, with room for
// the usual single output, where a closure over its fields took four.
type syncOutputs struct {
	s     *Server
	fn    Function
	id    string
	start time.Time
	size  int64
	outs  []Output
	first [1]Output
}

func (so *syncOutputs) emit(o Output) error {
	if len(so.outs) == 0 {
		so.s.metrics.observeFirstOutput(so.fn, time.Since(so.start))
	} else if o.Attempt != so.outs[0].Attempt {
		so.outs, so.size = so.outs[:0], 0 // the function was retried: only the retry's outputs count
	}
	if so.size += int64(len(o.Payload)); so.size > so.s.cfg.MaxOutputBytes {
		return so.s.outputTooLarge(so.id)
	}
	o.Seq = int64(len(so.outs))
	so.outs = append(so.outs, o)
	return nil
}

func (s *Server) outputTooLarge(id string) *apiError {
	e := newAPIError(http.StatusBadGateway, codeOutputTooLarge,
		"outputs exceed %d bytes; stream them (Accept: text/event-stream or application/x-ndjson)", s.cfg.MaxOutputBytes)
	e.InvocationID = id
	return e
}

// invokeStream runs the invocation and streams each output as it comes. Until the first
// output nothing is written, so a failure to start still gets its proper status.
//
// A caller that goes away does not cancel the invocation: it runs on to its end (bounded by
// its deadline, and by shutdown), recording its outputs in the journal, so that the caller can
// resume with GET /v1/invocations/{id}/events and Last-Event-ID and get exactly what it
// missed.
func (s *Server) invokeStream(c *gin.Context, fn Function, req *Request, m mode) {
	if !s.acquire(c, req.ID) {
		return
	}
	defer s.release()
	ctx, cancel := context.WithDeadline(context.WithoutCancel(c.Request.Context()), req.Deadline)
	defer cancel()
	if err := s.streams.start(req.ID, cancel); err != nil {
		e := newAPIError(http.StatusServiceUnavailable, codeUnavailable, "%v", err)
		e.retryAfter, e.InvocationID = true, req.ID
		s.writeError(c, e)
		return
	}
	defer s.streams.done(req.ID)

	j := s.journals.add(req.ID, fn)
	st := newStreamer(m, c.Writer, req.ID, 0)
	start := time.Now()
	var n, last int64 // outputs streamed; of them, the current attempt's
	attempt := 0
	var gone bool // the caller went away: outputs go to the journal only
	emit := func(o Output) error {
		if o.Attempt != attempt {
			attempt, last = o.Attempt, 0
		}
		o.Seq = n
		n++
		last++
		j.append(o)
		if o.Seq == 0 {
			s.metrics.observeFirstOutput(fn, time.Since(start))
			st.begin()
		}
		if gone {
			return nil
		}
		if err := st.output(o); err != nil {
			gone = true
			s.log.Debug("caller gone; the invocation runs on for a resume", "invocation_id", req.ID, "seq", o.Seq, "err", err)
		}
		return nil
	}
	res, err := s.cfg.Invoker.Invoke(ctx, fn, req, emit)
	if err == nil && res.Attempt != attempt {
		attempt, last = res.Attempt, 0 // the retry that ended it emitted none
	}
	end := outcome(req, res, err, last)
	end.Attempt = attempt
	j.finish(end, time.Now())
	if end.Err != nil {
		s.logFailure(c, fn, req.ID, err, end.Err)
		c.Set(keyStatus, end.Err.Status)
		if n == 0 {
			s.writeError(c, end.Err)
			return
		}
	} else if n == 0 {
		st.begin()
	}
	if err := st.end(end); err != nil {
		// The caller is gone; its invocation ended anyway and the journal has the outcome.
		s.log.Debug("stream end not delivered", "invocation_id", req.ID, "err", err)
	}
}

// logFailure logs an invocation that did not succeed, once, at the level it deserves: a
// function failure or a caller leaving is routine (Debug); an unexpected invoker error needs a
// human (Error).
func (s *Server) logFailure(c *gin.Context, fn Function, id string, err error, e *apiError) {
	level := slog.LevelDebug
	if e.Status == http.StatusInternalServerError {
		level = slog.LevelError
	}
	s.log.Log(c.Request.Context(), level, "invocation failed", "function", fn.String(),
		"invocation_id", id, "code", e.Code, "status", e.Status, "err", errOr(err, e))
}

func errOr(err error, e *apiError) error {
	if err != nil {
		return err
	}
	return e
}
