package main

import (
	"context"
	"errors"
	"strings"
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
			err := run(context.Background(), tc.args, &out, &errOut)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("run(%q) error = %v, want %v", tc.args, err, tc.wantErr)
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("run(%q) printed %q, want it to contain %q", tc.args, out.String(), tc.wantOut)
			}
		})
	}
}
