package invocation

// CopyTraceContext sets dst's TraceParent and TraceState to src's, so that an output stays in
// its input's trace: the SDK's Pulsar Functions instance and the host runtime (with tracing
// off) pass the trace context on unchanged. A tracestate without a traceparent is not copied.
func CopyTraceContext(dst, src map[string]string) {
	tp := src[TraceParent]
	if tp == "" {
		return
	}
	dst[TraceParent] = tp
	if ts := src[TraceState]; ts != "" {
		dst[TraceState] = ts
	} else {
		delete(dst, TraceState)
	}
}
