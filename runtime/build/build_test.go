package build

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBinary(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "bin", "echo")
	require.NoError(t, Binary(ctx, filepath.Join("..", "..", "functions", "echo"), out))
	cmd := exec.CommandContext(ctx, out)
	cmd.Stdin = strings.NewReader("built")
	got, err := cmd.Output()
	require.NoError(t, err)
	assert.Equal(t, "built\n", string(got), "one-shot mode ends the output with a newline")
}

func TestBinaryCompileError(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// A broken main package inside this module (testdata is ignored by ./... but buildable).
	dir := filepath.Join("testdata", "broken")
	out := filepath.Join(t.TempDir(), "broken")
	err := Binary(ctx, dir, out)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "undefined: nosuchthing")
	_, statErr := os.Stat(out)
	assert.True(t, os.IsNotExist(statErr), "no binary after a failed build")
}

func TestNewest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.go"), []byte("package a"), 0o644))
	n1, err := Newest(dir)
	require.NoError(t, err)
	later := time.Now().Add(time.Hour)
	require.NoError(t, os.Chtimes(filepath.Join(dir, "a.go"), later, later))
	n2, err := Newest(dir)
	require.NoError(t, err)
	assert.Greater(t, n2, n1)
}
