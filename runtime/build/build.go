// Package build compiles a function's main package into a binary the host runtime can launch.
package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Binary builds the main package in dir (a directory of Go source) into out, with CGO off so
// the binary runs anywhere the worker or the host runs. go build's own cache makes a rebuild
// of unchanged source fast. The error carries the compiler's output.
func Binary(ctx context.Context, dir, out string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	module, err := moduleRoot(abs)
	if err != nil {
		return fmt.Errorf("building %s: %w", dir, err)
	}
	rel, err := filepath.Rel(module, abs)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("building %s: %w", dir, err)
	}
	// Build next to out and rename, so that a running process never sees a half-written file
	// and a failed build leaves the previous binary in place.
	tmp := out + ".tmp"
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", tmp, "./"+filepath.ToSlash(rel))
	cmd.Dir = module
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	if err := cmd.Run(); err != nil {
		_ = os.Remove(tmp) // may not exist; the build error is what matters
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("building %s:\n%s", dir, msg)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("building %s: %w", dir, err)
	}
	return nil
}

// moduleRoot returns the nearest directory at or above dir that holds a go.mod.
func moduleRoot(dir string) (string, error) {
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("no go.mod above " + dir)
		}
		d = parent
	}
}

// Newest returns the latest modification time (Unix nanoseconds) of the .go files, go.mod and
// go.sum directly in dir: a cheap way to notice that source changed.
func Newest(dir string) (int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var newest int64
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".go") && n != "go.mod" && n != "go.sum" {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		newest = max(newest, info.ModTime().UnixNano())
	}
	return newest, nil
}
