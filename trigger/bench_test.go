package trigger

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// BenchmarkInvokeEcho is a synchronous invoke of the fake echo function through the whole
// trigger (routing, header parsing, ids, metrics, the invoker port), in process.
func BenchmarkInvokeEcho(b *testing.B) {
	s := newServer(b, newFake(), nil)
	benchHandler(b, s.Handler())
}

// BenchmarkBareGin is the floor: a bare gin handler answering the same bytes.
func BenchmarkBareGin(b *testing.B) {
	e := gin.New()
	e.POST("/function/:name", func(c *gin.Context) {
		body, err := io.ReadAll(c.Request.Body)
		if err != nil {
			c.AbortWithStatus(http.StatusBadRequest)
			return
		}
		c.Data(http.StatusOK, "text/plain", body)
	})
	benchHandler(b, e)
}

func benchHandler(b *testing.B, h http.Handler) {
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/function/echo", strings.NewReader("hello, world"))
		req.Header.Set("Content-Type", "text/plain")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK || w.Body.String() != "hello, world" {
			b.Fatalf("status %d, body %q", w.Code, w.Body.String())
		}
	}
}
