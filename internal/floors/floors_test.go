package floors

import (
	"bytes"
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFloors checks the module's own production import graph, once with the default build tags
// and once with every tag the tests use, since a tagged non-test file could import more.
func TestFloors(t *testing.T) {
	for _, tags := range []string{"", "integration,disruptive"} {
		t.Run("tags="+tags, func(t *testing.T) {
			g := load(t, tags)
			if _, ok := g[Module+"/functions/pf"]; !ok {
				t.Fatalf("go list did not list %s/functions/pf: is the module path %s?", Module, Module)
			}
			for _, v := range Check(g, Rules()) {
				t.Errorf("%s", v)
			}
		})
	}
}

// load runs go list over the module and every package it depends on, and returns their
// production imports (Imports excludes test files' imports).
func load(t testing.TB, tags string) Graph {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	args := []string{"list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}"}
	if tags != "" {
		args = append(args, "-tags="+tags)
	}
	args = append(args, Module+"/...")
	cmd := exec.CommandContext(ctx, "go", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	g := Graph{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		g[f[0]] = f[1:]
	}
	return g
}

func TestCheck(t *testing.T) {
	t.Parallel()
	const m = Module
	tests := []struct {
		name  string
		graph Graph
		want  []string
	}{
		{
			name: "floors kept",
			graph: Graph{
				m + "/functions/pf":                {m + "/functions/pf/plugin", "context"},
				m + "/functions/pf/plugin":         {m + "/internal/manifest"},
				m + "/runtime/host":                {m + "/functions/pf/plugin"},
				m + "/trigger":                     {m + "/functions/pf/invocation", "github.com/gin-gonic/gin"},
				m + "/cmd/fnhost":                  {m + "/runtime/host", m + "/trigger", m + "/cmd/fnhost-bench/bareplugin"},
				m + "/cmd/fnhost-bench/bareplugin": nil,
			},
		},
		{
			name: "sdk reaches gin through a third-party package",
			graph: Graph{
				m + "/functions/pf":         {m + "/functions/pf/plugin"},
				m + "/functions/pf/plugin":  {"example.org/ginmiddleware"},
				"example.org/ginmiddleware": {"github.com/gin-gonic/gin/render"},
			},
			want: []string{
				"functions/pf must not reach runtime/, trigger/ or gin: " + m + "/functions/pf -> " + m + "/functions/pf/plugin -> example.org/ginmiddleware -> github.com/gin-gonic/gin/render",
				"functions/pf must not reach runtime/, trigger/ or gin: " + m + "/functions/pf/plugin -> example.org/ginmiddleware -> github.com/gin-gonic/gin/render",
			},
		},
		{
			name: "chain stops at the first forbidden package",
			graph: Graph{
				m + "/trigger":      {m + "/runtime/host"},
				m + "/runtime/host": {m + "/runtime/pool"},
			},
			want: []string{
				"trigger/ must not reach runtime/: " + m + "/trigger -> " + m + "/runtime/host",
			},
		},
		{
			name: "runtime reaches trigger and gin",
			graph: Graph{
				m + "/runtime/host": {m + "/trigger/pulsarinvoke", "github.com/gin-gonic/gin"},
			},
			want: []string{
				"runtime/ must not reach trigger/ or gin: " + m + "/runtime/host -> " + m + "/trigger/pulsarinvoke",
				"runtime/ must not reach trigger/ or gin: " + m + "/runtime/host -> github.com/gin-gonic/gin",
			},
		},
		{
			name: "internal imports cmd",
			graph: Graph{
				m + "/internal/tools": {m + "/cmd/fnhost-bench/bareplugin"},
			},
			want: []string{
				"only cmd/ may import cmd/: " + m + "/internal/tools -> " + m + "/cmd/fnhost-bench/bareplugin",
			},
		},
		{
			name: "a name sharing a prefix is not below it",
			graph: Graph{
				m + "/functions/pfx": {m + "/runtime/host"},
				m + "/triggers":      {m + "/runtime/host"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, v := range Check(tc.graph, Rules()) {
				got = append(got, v.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Check:\ngot  %q\nwant %q", got, tc.want)
			}
		})
	}
}
