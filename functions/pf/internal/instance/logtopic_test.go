package instance

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLogShipperCapturesRecords(t *testing.T) {
	t.Parallel()
	s := newLogShipper()
	var stderr bytes.Buffer
	logger := slog.New(tee{slog.NewJSONHandler(&stderr, nil), s.handler(slog.LevelInfo)}).With("function", "t/n/f")
	logger.Debug("not shipped")
	logger.Info("one", "k", "v")
	logger.WithGroup("g").Error("two", "x", 1)
	s.stop()
	s.stop() // idempotent
	logger.Info("after stop is dropped")

	var got []logRecord
	for r := range s.q {
		got = append(got, r)
	}
	require.Len(t, got, 2)
	assert.Equal(t, slog.LevelInfo, got[0].level)
	assert.Equal(t, slog.LevelError, got[1].level)
	var rec map[string]any
	require.NoError(t, json.Unmarshal(got[0].data, &rec))
	assert.Equal(t, "one", rec["msg"])
	assert.Equal(t, "t/n/f", rec["function"])
	assert.Equal(t, "v", rec["k"])
	require.NoError(t, json.Unmarshal(got[1].data, &rec))
	assert.Equal(t, map[string]any{"x": 1.0}, rec["g"])
	assert.Equal(t, 3, bytes.Count(stderr.Bytes(), []byte("\n")), "stderr gets every record at Info and above, also after stop")
}

func TestLogShipperDropsWhenFull(t *testing.T) {
	t.Parallel()
	s := newLogShipper()
	logger := slog.New(s.handler(slog.LevelInfo))
	for range logQueue + 10 {
		logger.Info("x") // never blocks
	}
	assert.Equal(t, int64(10), s.dropped.Load())
}

func TestRunRefusesBadConfigAtOnce(t *testing.T) {
	t.Parallel()
	err := Run(context.Background(), Args{ConfJSON: `{"pulsarServiceURL":"pulsar://127.0.0.1:1","port":"abc"}`}, echo, io.Discard)
	require.Error(t, err)
	assert.Equal(t, `instance config: field "port": want a number, got "abc"`, err.Error())
	assert.ErrorIs(t, err, ErrConfig)
}
