package pf

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRunOneShot(t *testing.T) {
	t.Parallel()
	upper := func(_ context.Context, in []byte) ([]byte, error) { return []byte(strings.ToUpper(string(in))), nil }
	tests := []struct {
		name    string
		handler any
		args    []string
		stdin   string
		wantOut string
		wantErr string
		usage   bool
	}{
		{name: "upper", handler: upper, stdin: "hi\n", wantOut: "HI\n"},
		{name: "newline added", handler: upper, stdin: "hi", wantOut: "HI\n"},
		{name: "no output", handler: func([]byte) error { return nil }, stdin: "x", wantOut: ""},
		{
			name: "stream", stdin: "3",
			handler: func(ctx context.Context, in []byte) error {
				for i := range 3 {
					if err := Emit(ctx, fmt.Appendf(nil, "chunk %d", i)); err != nil {
						return err
					}
				}
				return nil
			},
			wantOut: "chunk 0\nchunk 1\nchunk 2\n",
		},
		{
			name: "user config key and properties", stdin: "in",
			args: []string{"-user-config", `{"greeting":"hello"}`, "-key", "k7", "-property", "a=1", "-property", "b=x=y"},
			handler: func(ctx context.Context, in []byte) ([]byte, error) {
				fc, _ := FromContext(ctx)
				return fmt.Appendf(nil, "%v %s %v", fc.GetUserConfValue("greeting"), fc.InputKey(), fc.InputProperties()), nil
			},
			wantOut: "hello k7 map[a:1 b:x=y]\n",
		},
		{name: "function error", handler: func([]byte) error { return errBoom }, wantErr: "function failed: boom"},
		{name: "function panic", handler: func([]byte) error { panic("oops") }, wantErr: "function panicked: oops"},
		{name: "bad user config", handler: upper, args: []string{"-user-config", "[1]"}, wantErr: "-user-config: want a JSON object"},
		{name: "bad property", handler: upper, args: []string{"-property", "novalue"}, wantErr: "want name=value", usage: true},
		{name: "unknown flag", handler: upper, args: []string{"-nope"}, wantErr: "not defined", usage: true},
		{name: "stray argument", handler: upper, args: []string{"extra"}, wantErr: `unexpected argument "extra"`, usage: true},
		{name: "invalid handler", handler: func(string) {}, wantErr: "invalid handler", usage: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr strings.Builder
			err := run(context.Background(), tc.handler, "/bin/fn", tc.args, strings.NewReader(tc.stdin), &stdout, &stderr)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error()+stderr.String(), tc.wantErr)
				assert.Equal(t, tc.usage, errors.Is(err, errUsage), "usage error")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantOut, stdout.String())
		})
	}
}

func TestRunHelp(t *testing.T) {
	t.Parallel()
	var stderr strings.Builder
	err := run(context.Background(), func() {}, "/bin/fn", []string{"-h"}, strings.NewReader(""), io.Discard, &stderr)
	require.ErrorIs(t, err, flag.ErrHelp)
	assert.Contains(t, stderr.String(), "fn -instance-conf '<json>'")
	assert.Contains(t, stderr.String(), "one-shot")
}
