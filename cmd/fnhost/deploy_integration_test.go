//go:build integration

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/internal/pulsartest"
)

// TestDeployThroughREST deploys with fnhost deploy (admin REST API, no pulsar-admin), updates
// the function to another binary, which takes effect, and deletes it.
func TestDeployThroughREST(t *testing.T) {
	t.Parallel()
	pulsartest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	name := pulsartest.Name(t)
	in, out := "persistent://public/default/"+name+"-in", "persistent://public/default/"+name+"-out"
	dir := t.TempDir()
	writeManifest := func(fn string) {
		src, err := filepath.Abs(filepath.Join("..", "..", "functions", fn))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(fmt.Sprintf(
			"name: %s\ngo: %s\ninputs: [%s]\noutput: %s\n", name, src, in, out)), 0o644))
	}
	deployCmd := func(extra ...string) string {
		var stdout, stderr strings.Builder
		args := append([]string{"deploy", "--manifests", dir, "--build-dir", t.TempDir(), "--admin-url", pulsartest.AdminURL()}, extra...)
		err := run(ctx, append(args, name), nil, &stdout, &stderr)
		require.NoError(t, err, "fnhost deploy: %s\n%s", stdout.String(), stderr.String())
		return stdout.String()
	}
	triggerValue := func(v string) string {
		o, err := pulsartest.AdminCLI(ctx, t, "functions", "trigger", "--tenant", "public", "--namespace", "default",
			"--name", name, "--topic", in, "--trigger-value", v)
		require.NoError(t, err)
		return strings.TrimSpace(o)
	}

	writeManifest("echo")
	assert.Contains(t, deployCmd(), "creating public/default/"+name)
	assert.Equal(t, "hi", triggerValue("hi"))

	pkg := "function://public/default/" + name
	// live lists the versions of the function's package whose metadata still exists.
	live := func() []string {
		admin := pulsartest.FunctionsAdmin(t)
		versions, err := admin.Packages().ListVersionsWithContext(ctx, pkg)
		require.NoError(t, err)
		var out []string
		for _, v := range versions {
			if _, err := admin.Packages().GetMetadataWithContext(ctx, pkg+"@"+v); err == nil {
				out = append(out, v)
			}
		}
		return out
	}
	require.Len(t, live(), 1, "the echo package")
	echoVersion := live()[0]

	writeManifest("upper")
	updated := deployCmd()
	assert.Contains(t, updated, "updating public/default/"+name)
	require.Eventually(t, func() bool { return triggerValue("hi") == "HI" }, 2*time.Minute, time.Second, "the new binary answers")
	assert.Contains(t, updated, "deleted 1 unused version(s) of "+pkg, "the echo package is pruned")
	require.Len(t, live(), 1, "only the upper package")
	assert.NotEqual(t, echoVersion, live()[0])

	deleted := deployCmd("--delete")
	assert.Contains(t, deleted, "deleted public/default/"+name)
	assert.Contains(t, deleted, "deleted 1 unused version(s) of "+pkg)
	assert.Empty(t, live(), "no package left behind")
}
