package invocation

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCopyTraceContext(t *testing.T) {
	t.Parallel()
	dst := map[string]string{TraceState: "stale", "x": "1"}
	CopyTraceContext(dst, map[string]string{TraceParent: "tp"})
	assert.Equal(t, map[string]string{TraceParent: "tp", "x": "1"}, dst, "a stale tracestate goes")
	CopyTraceContext(dst, map[string]string{TraceParent: "tp2", TraceState: "k=v"})
	assert.Equal(t, map[string]string{TraceParent: "tp2", TraceState: "k=v", "x": "1"}, dst)
	CopyTraceContext(dst, map[string]string{TraceState: "orphan"})
	assert.Equal(t, "k=v", dst[TraceState], "no traceparent: nothing copied")
}
