package logutil

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Not parallel: it swaps the process's default logger.
func TestLogsThroughDefaultLogger(t *testing.T) {
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{AddSource: true, Level: slog.LevelInfo})))
	t.Cleanup(func() { slog.SetDefault(old) })

	Debugf("hidden %d", 1)
	Infof("hello %s", "world")
	Warn("careful ", 2)
	Error("bad")

	var lines []map[string]any
	dec := json.NewDecoder(&buf)
	for dec.More() {
		var m map[string]any
		require.NoError(t, dec.Decode(&m))
		lines = append(lines, m)
	}
	require.Len(t, lines, 3)
	assert.Equal(t, "hello world", lines[0]["msg"])
	assert.Equal(t, "INFO", lines[0]["level"])
	assert.Equal(t, "careful 2", lines[1]["msg"])
	assert.Equal(t, "WARN", lines[1]["level"])
	assert.Equal(t, "ERROR", lines[2]["level"])
	src, _ := lines[0]["source"].(map[string]any)
	assert.Contains(t, src["file"], "logutil_test.go", "the source is the caller's")
}
