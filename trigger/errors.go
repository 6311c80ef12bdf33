package trigger

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
)

// Error codes of the JSON error body {"error":{"code":…,"message":…}}. They are part of the
// HTTP API (documented in openapi.yaml); clients branch on them.
const (
	codeInvalidHeader      = "invalid_header"
	codeInvalidName        = "invalid_name"
	codeInvalidCallbackURL = "invalid_callback_url"
	codePayloadTooLarge    = "payload_too_large"
	codeBodyUnreadable     = "body_unreadable"
	codeFunctionNotFound   = "function_not_found"
	codeInvocationNotFound = "invocation_not_found"
	codeReplayExpired      = "replay_window_exceeded"
	codeNotFound           = "not_found"
	codeMethodNotAllowed   = "method_not_allowed"
	codeTooManyRequests    = "too_many_requests"
	codeFunctionError      = "function_error"
	codeFunctionPanic      = "function_panic"
	codeOutputTooLarge     = "output_too_large"
	codeCanceled           = "canceled"
	codeDeadline           = "deadline_exceeded"
	codeUnavailable        = "unavailable"
	codeNotSupported       = "not_supported"
	codeNotReady           = "not_ready"
	codeInternal           = "internal"
)

// apiError is an error answered to an HTTP caller.
type apiError struct {
	Status       int    `json:"-"`
	Code         string `json:"code"`
	Message      string `json:"message"`
	InvocationID string `json:"invocation_id,omitempty"`
	// retryAfter adds Retry-After (429, 503).
	retryAfter bool
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func newAPIError(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// errorBody is the JSON shape of every error response.
type errorBody struct {
	Error *apiError `json:"error"`
}

// writeError answers e as JSON and aborts the gin chain.
func (s *Server) writeError(c *gin.Context, e *apiError) {
	if e.retryAfter {
		c.Header("Retry-After", strconv.Itoa(s.retryAfterSeconds()))
	}
	if e.InvocationID != "" {
		c.Header(headerInvocationID, e.InvocationID)
	}
	c.AbortWithStatusJSON(e.Status, errorBody{Error: e})
}

func (s *Server) retryAfterSeconds() int {
	return max(1, int((s.cfg.RetryAfter+999_999_999)/1_000_000_000))
}

// invokeError maps an error returned by Invoker.Invoke or Publisher.Publish (not a function's
// failure) to the caller's answer.
func invokeError(err error, id string) *apiError {
	var e *apiError
	switch {
	case errors.As(err, &e):
		c := *e
		e = &c
	case errors.Is(err, ErrFunctionNotFound):
		e = newAPIError(http.StatusNotFound, codeFunctionNotFound, "%v", err)
	case errors.Is(err, ErrUnavailable):
		e = newAPIError(http.StatusServiceUnavailable, codeUnavailable, "%v", err)
		e.retryAfter = true
	case errors.Is(err, ErrOverloaded):
		e = newAPIError(http.StatusTooManyRequests, codeTooManyRequests, "%v", err)
		e.retryAfter = true
	case errors.Is(err, context.DeadlineExceeded):
		e = newAPIError(http.StatusGatewayTimeout, codeDeadline, "deadline passed before the function finished")
	case errors.Is(err, context.Canceled):
		// Only the caller going away or shutdown cancels; 499 is what nginx logs for the former.
		e = newAPIError(statusClientClosed, codeCanceled, "invocation canceled")
	default:
		e = newAPIError(http.StatusInternalServerError, codeInternal, "%v", err)
	}
	e.InvocationID = id
	return e
}

// statusClientClosed is recorded in metrics when the caller went away (no response is read).
const statusClientClosed = 499

// functionError maps a function's failure to the caller's answer.
func functionError(fe *FunctionError, id string) *apiError {
	var e *apiError
	switch fe.Kind {
	case KindDeadline:
		e = newAPIError(http.StatusGatewayTimeout, codeDeadline, "%s", fe.Message)
	case KindPanic:
		e = newAPIError(http.StatusBadGateway, codeFunctionPanic, "%s", fe.Message)
	case KindCanceled:
		e = newAPIError(statusClientClosed, codeCanceled, "%s", fe.Message)
	default:
		e = newAPIError(http.StatusBadGateway, codeFunctionError, "%s", fe.Message)
	}
	e.InvocationID = id
	return e
}
