package trigger

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
)

// functionView is the JSON form of a FunctionInfo.
type functionView struct {
	FunctionInfo
	ID      string `json:"id"`
	Timeout string `json:"timeout,omitempty"`
	Invoke  string `json:"invoke"`
}

func viewOf(fi FunctionInfo) functionView {
	v := functionView{FunctionInfo: fi, ID: fi.Function.String(),
		Invoke: "/v1/functions/" + fi.Function.String() + "/invoke"}
	if fi.Timeout > 0 {
		v.Timeout = fi.Timeout.String()
	}
	return v
}

// handleFunctions serves GET /v1/functions.
func (s *Server) handleFunctions(c *gin.Context) {
	fis, err := s.cfg.Invoker.Functions(c.Request.Context())
	if err != nil {
		s.writeError(c, invokeError(err, ""))
		return
	}
	views := make([]functionView, 0, len(fis))
	for _, fi := range fis {
		views = append(views, viewOf(fi))
	}
	c.JSON(http.StatusOK, gin.H{"functions": views})
}

// handleFunction serves GET /v1/functions/:tenant/:namespace/:name.
func (s *Server) handleFunction(c *gin.Context) {
	fn := functionParams(c)
	if e := checkNames(fn.Tenant, fn.Namespace, fn.Name); e != nil {
		s.writeError(c, e)
		return
	}
	fis, err := s.cfg.Invoker.Functions(c.Request.Context())
	if err != nil {
		s.writeError(c, invokeError(err, ""))
		return
	}
	for _, fi := range fis {
		if fi.Function == fn {
			c.JSON(http.StatusOK, viewOf(fi))
			return
		}
	}
	s.writeError(c, newAPIError(http.StatusNotFound, codeFunctionNotFound, "no function %s", fn))
}

// handlePublish serves POST /v1/topics/:tenant/:namespace/:topic: fire and forget.
//
// Without a Publisher it answers 501 Not Implemented: this trigger (e.g. embedded mode, no
// Pulsar) lacks the capability altogether, so retrying is pointless, unlike 503.
func (s *Server) handlePublish(c *gin.Context) {
	if s.cfg.Publisher == nil {
		s.writeError(c, newAPIError(http.StatusNotImplemented, codeNotSupported,
			"this trigger has no topic publisher (it runs without Pulsar); publishing is not supported"))
		return
	}
	t := Topic{Tenant: c.Param("tenant"), Namespace: c.Param("namespace"), Name: c.Param("topic")}
	if e := checkNames(t.Tenant, t.Namespace, t.Name); e != nil {
		s.writeError(c, e)
		return
	}
	h := c.Request.Header
	props, err := parseProperties(h)
	if err == nil {
		err = parseTraceParent(h.Get(headerTraceParent))
	}
	var ct string
	if err == nil {
		ct, err = parseContentType(h.Get("Content-Type"))
	}
	if err != nil {
		s.writeError(c, newAPIError(http.StatusBadRequest, codeInvalidHeader, "%v", err))
		return
	}
	payload, e := s.readBody(c)
	if e != nil {
		s.writeError(c, e)
		return
	}
	tp := h.Get(headerTraceParent)
	msg := Message{Payload: payload, Key: h.Get(headerKey), Properties: props, ContentType: ct,
		TraceParent: tp, TraceState: cleanTraceState(tp, h.Get(headerTraceState))}
	msg.TraceParent, msg.TraceState = s.traceContext(c, msg.TraceParent, msg.TraceState)
	if err := s.cfg.Publisher.Publish(c.Request.Context(), t, msg); err != nil {
		e := invokeError(err, "")
		if e.Code == codeFunctionNotFound {
			e = newAPIError(http.StatusNotFound, codeNotFound, "%v", err)
		}
		s.writeError(c, e)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"topic": t.String()})
}

func itoa(n int) string { return strconv.Itoa(n) }
