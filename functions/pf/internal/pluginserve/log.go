package pluginserve

import (
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// hclogTimeFormat is the @timestamp layout go-plugin's host parses; a line whose timestamp does
// not parse loses its level.
const hclogTimeFormat = "2006-01-02T15:04:05.000000Z07:00"

// levelTrace is hclog's trace level in slog terms.
const levelTrace = slog.LevelDebug - 4

// newLogger returns a logger writing one JSON object per line in hclog's shape (@level,
// @message, @timestamp, then the attributes), which go-plugin's host re-levels into its own
// logger. Anything else would arrive at the host at Debug.
func newLogger(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: hclogAttr}))
}

func hclogAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.TimeKey:
		if t, ok := a.Value.Any().(time.Time); ok {
			return slog.String("@timestamp", t.Format(hclogTimeFormat))
		}
	case slog.LevelKey:
		if l, ok := a.Value.Any().(slog.Level); ok {
			return slog.String("@level", levelName(l))
		}
	case slog.MessageKey:
		if a.Value.Kind() == slog.KindString {
			return slog.String("@message", a.Value.String())
		}
	}
	if strings.HasPrefix(a.Key, "@") {
		// go-plugin's host asserts that @message and @level are strings and panics when
		// they are not: keep user attributes out of the @ namespace.
		a.Key = "_" + a.Key
	}
	return a
}

func levelName(l slog.Level) string {
	switch {
	case l < slog.LevelDebug:
		return "trace"
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	default:
		return "error"
	}
}

// lockedWriter serialises whole writes of two loggers (the function's and go-plugin's) that
// share stderr, so that lines longer than a pipe's atomic write never interleave.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}
