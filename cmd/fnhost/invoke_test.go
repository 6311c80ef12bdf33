package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/trigger"
)

// fakeInvoker: echo returns its input (and the key and properties it got); stream emits "a",
// "b", "c"; fail fails; anything else does not exist.
type fakeInvoker struct{}

func (fakeInvoker) Invoke(_ context.Context, fn trigger.Function, req *trigger.Request, emit func(trigger.Output) error) (trigger.Result, error) {
	switch fn.Name {
	case "echo":
		out := fmt.Sprintf("%s key=%s p=%s", req.Payload, req.Key, req.Properties["p"])
		return trigger.Result{Outputs: 1}, emit(trigger.Output{Payload: []byte(out)})
	case "stream":
		for _, s := range []string{"a", "b\nc", "\xff"} {
			if err := emit(trigger.Output{Payload: []byte(s)}); err != nil {
				return trigger.Result{}, err
			}
		}
		return trigger.Result{Outputs: 3}, nil
	case "fail":
		return trigger.Result{Err: &trigger.FunctionError{Kind: trigger.KindUser, Message: "boom"}}, nil
	}
	return trigger.Result{}, trigger.ErrFunctionNotFound
}

func (fakeInvoker) Functions(context.Context) ([]trigger.FunctionInfo, error) { return nil, nil }

func TestInvokeCommand(t *testing.T) {
	t.Parallel()
	srv, err := trigger.New(trigger.Config{Invoker: fakeInvoker{}})
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	file := filepath.Join(t.TempDir(), "in")
	require.NoError(t, os.WriteFile(file, []byte("from file"), 0o600))

	tests := []struct {
		name     string
		args     []string
		stdin    string
		want     string
		wantErr  string
		exitCode error
	}{
		{name: "data", args: []string{"echo", "--data", "hi", "--key", "k", "--property", "p=v"}, want: "hi key=k p=v"},
		{name: "flags first", args: []string{"--data", "hi", "public/default/echo"}, want: "hi key= p="},
		{name: "stdin", args: []string{"echo"}, stdin: "piped", want: "piped key= p="},
		{name: "data file", args: []string{"echo", "--data-file", file}, want: "from file key= p="},
		{name: "stream", args: []string{"stream", "--stream"}, want: "a\nb\nc\n\xff\n"},
		{name: "function error", args: []string{"fail", "--data", "x"}, wantErr: "502 Bad Gateway: function_error: boom (invocation ", exitCode: errReported},
		{name: "not found", args: []string{"nope", "--data", "x"}, wantErr: "404 Not Found: function_not_found", exitCode: errReported},
		{name: "stream error", args: []string{"fail", "--stream"}, wantErr: "function_error: boom", exitCode: errReported},
		{name: "no function", args: []string{"--data", "x"}, wantErr: "name the function", exitCode: errUsage},
		{name: "bad property", args: []string{"echo", "--property", "novalue"}, wantErr: "want name=value", exitCode: errUsage},
		{name: "bad name", args: []string{"a/b"}, wantErr: "want name or tenant/namespace/name", exitCode: errUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr strings.Builder
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			args := append(tc.args, "--url", ts.URL)
			err := invokeCmd(ctx, args, nil, strings.NewReader(tc.stdin), &stdout, &stderr)
			if tc.exitCode != nil {
				assert.ErrorIs(t, err, tc.exitCode)
				assert.Contains(t, stderr.String(), tc.wantErr)
				return
			}
			require.NoError(t, err, stderr.String())
			assert.Equal(t, tc.want, stdout.String())
		})
	}

	t.Run("async", func(t *testing.T) {
		t.Parallel()
		var stdout, stderr strings.Builder
		err := invokeCmd(context.Background(), []string{"echo", "--async", "--data", "x"}, []string{"FNHOST_TRIGGER_URL=" + ts.URL},
			strings.NewReader(""), &stdout, &stderr)
		require.NoError(t, err, stderr.String())
		lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
		require.Len(t, lines, 2)
		assert.NotEmpty(t, lines[0])
		assert.Equal(t, ts.URL+"/v1/invocations/"+lines[0], lines[1])
	})
}

func TestTriggerConfigFromEnv(t *testing.T) {
	t.Parallel()
	c, err := triggerConfigFromEnv(nil)
	require.NoError(t, err)
	assert.Equal(t, triggerConfig{Addr: "127.0.0.1:8088", PulsarURL: "pulsar://127.0.0.1:6650", AdminURL: "http://127.0.0.1:8080",
		Manifests: "manifests/functions", LogLevel: c.LogLevel, ShutdownTimeout: 30 * time.Second}, c)

	c, err = triggerConfigFromEnv([]string{"FNHOST_ADDR=:1", "FNHOST_PULSAR_URL=pulsar://p:6650", "FNHOST_ADMIN_URL=", "FNHOST_MANIFESTS=m", "FNHOST_REPLY_TOPIC=persistent://a/b/c"})
	require.NoError(t, err)
	assert.Equal(t, ":1", c.Addr)
	assert.Equal(t, "pulsar://p:6650", c.PulsarURL)
	assert.Empty(t, c.AdminURL)
	assert.Equal(t, "m", c.Manifests)
	assert.True(t, c.manifestsSet)
	assert.Equal(t, "persistent://a/b/c", c.ReplyTopic)

	_, err = triggerConfigFromEnv([]string{"FNHOST_SHUTDOWN_TIMEOUT=soon"})
	assert.ErrorContains(t, err, "FNHOST_SHUTDOWN_TIMEOUT")
}
