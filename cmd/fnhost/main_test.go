package main

import (
	"context"
	"errors"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		wantOut string
		wantErr error
	}{
		{name: "version", args: []string{"version"}, wantOut: "fnhost dev\n"},
		{name: "help", args: []string{"help"}, wantOut: "Usage: fnhost"},
		{name: "no command", args: nil, wantErr: errUsage},
		{name: "unknown command", args: []string{"frobnicate"}, wantErr: errUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut strings.Builder
			err := run(context.Background(), tc.args, nil, &out, &errOut)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("run(%q) error = %v, want %v", tc.args, err, tc.wantErr)
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("run(%q) printed %q, want it to contain %q", tc.args, out.String(), tc.wantOut)
			}
		})
	}
}

func TestNewAndValidate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/fns\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut strings.Builder
	if err := run(context.Background(), []string{"new", "--dir", dir, "greet"}, nil, &out, &errOut); err != nil {
		t.Fatalf("fnhost new: %v\n%s", err, errOut.String())
	}
	src, err := os.ReadFile(filepath.Join(dir, "functions", "greet", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parser.ParseFile(token.NewFileSet(), "main.go", src, 0); err != nil {
		t.Errorf("generated main.go does not parse: %v", err)
	}
	// The manifest names go: functions/greet, relative to the project directory.
	if err := run(context.Background(), []string{"validate", filepath.Join(dir, "manifests", "functions")}, nil, &out, &errOut); err != nil {
		t.Errorf("fnhost validate on the new manifest: %v\n%s", err, errOut.String())
	}
	if err := run(context.Background(), []string{"new", "--dir", dir, "greet"}, nil, &out, &errOut); err == nil {
		t.Error("fnhost new over an existing function must fail")
	}
	errOut.Reset()
	if err := run(context.Background(), []string{"new", "--dir", dir, "Not_Valid"}, nil, &out, &errOut); !errors.Is(err, errReported) || !strings.Contains(errOut.String(), "not a valid function name") {
		t.Errorf("invalid name: err %v, stderr %q", err, errOut.String())
	}
}

func TestValidateReportsProblems(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(p, []byte("name: x\nparallelsim: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut strings.Builder
	err := run(context.Background(), []string{"validate", p}, nil, &out, &errOut)
	if !errors.Is(err, errReported) || !strings.Contains(errOut.String(), `field "parallelsim": unknown field`) {
		t.Errorf("validate bad.yaml: err %v, stderr %q", err, errOut.String())
	}
}

// lockedWriter serialises writes from the goroutines of a running command.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
