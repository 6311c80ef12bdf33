package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeManifest writes body to dir/name.yaml next to an executable "fn" binary, so that
// go: ./fn resolves.
func writeManifest(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "fn"), []byte("#!/bin/sh\n"), 0o755))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "src"), 0o755))
	p := filepath.Join(dir, "fn.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	return p
}

const base = "name: fn\ngo: fn\ninputs: [in]\n"

func TestParseValid(t *testing.T) {
	t.Parallel()
	p := writeManifest(t, `tenant: acme
namespace: orders
name: enrich
runtime: GO
go: src
inputs:
  - in-a
  - acme/orders/in-b
inputSpecs:
  persistent://acme/orders/in-c:
    receiverQueueSize: 10
output: out
retainKeyOrdering: true
subscriptionPosition: Earliest
processingGuarantees: ATLEAST_ONCE
parallelism: 3
timeoutMs: 2500
maxMessageRetries: 4
deadLetterTopic: dlq
userConfig:
  source: x
  fnhost.retryBackoff: 250ms
`)
	f, err := Load(p)
	require.NoError(t, err)
	assert.Equal(t, "acme/orders/enrich", f.FQFN())
	assert.Equal(t, []string{"persistent://public/default/in-a", "persistent://acme/orders/in-b", "persistent://acme/orders/in-c"}, f.Inputs)
	assert.Equal(t, "persistent://public/default/out", f.Output)
	assert.Equal(t, filepath.Join(filepath.Dir(p), "src"), f.Source)
	assert.Empty(t, f.Binary)
	assert.Equal(t, KeyShared, f.SubscriptionType)
	assert.Equal(t, "acme/orders/enrich", f.Subscription)
	assert.True(t, f.Earliest)
	assert.Equal(t, AtLeastOnce, f.Guarantee)
	assert.Equal(t, 3, f.Parallelism)
	assert.Equal(t, 2500*time.Millisecond, f.Timeout)
	assert.Equal(t, 4, f.MaxRetries)
	assert.Equal(t, "persistent://public/default/dlq", f.DeadLetterTopic)
	assert.Equal(t, 250*time.Millisecond, f.RetryBackoff)
	assert.Equal(t, "x", f.UserConfig["source"])
}

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	f, err := Load(writeManifest(t, base))
	require.NoError(t, err)
	assert.Equal(t, "public/default/fn", f.FQFN())
	assert.Equal(t, Shared, f.SubscriptionType)
	assert.Equal(t, AtLeastOnce, f.Guarantee)
	assert.Equal(t, 1, f.Parallelism)
	assert.Equal(t, -1, f.MaxRetries)
	assert.False(t, f.Earliest)
	assert.NotEmpty(t, f.Binary)
	assert.NotNil(t, f.UserConfig)
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want []string // each must appear in the error
	}{
		{name: "unknown field", body: base + "parallelsim: 2\n", want: []string{`:4: field "parallelsim": unknown field`}},
		{name: "wrong type", body: base + "parallelism: two\n", want: []string{`:4: field "parallelism": wrong type: str "two" where int is expected`}},
		{name: "not yaml", body: "name: [\n", want: []string{"not valid YAML"}},
		{name: "empty", body: "", want: []string{"empty manifest"}},
		{name: "missing inputs", body: "name: fn\ngo: fn\n", want: []string{`field "inputs": missing`}},
		{name: "missing name", body: "go: fn\ninputs: [in]\n", want: []string{`field "name": missing`}},
		{name: "missing go", body: "name: fn\ninputs: [in]\n", want: []string{`field "go": missing`}},
		{name: "go not found", body: "name: fn\ngo: nope\ninputs: [in]\n", want: []string{`field "go": "nope"`, "no such file"}},
		{name: "java", body: base + "jar: x.jar\nclassName: X\n", want: []string{`:4: field "jar": not supported: Java`, `field "className"`}},
		{name: "python runtime", body: base + "runtime: PYTHON\n", want: []string{`field "runtime": "PYTHON"`}},
		{name: "both orderings", body: base + "retainOrdering: true\nretainKeyOrdering: true\n", want: []string{"cannot both be true"}},
		{name: "bad guarantee", body: base + "processingGuarantees: SOMETIMES\n", want: []string{`field "processingGuarantees": "SOMETIMES"`}},
		{name: "autoAck false", body: base + "autoAck: false\n", want: []string{`field "autoAck": false needs processingGuarantees MANUAL`}},
		{name: "bad position", body: base + "subscriptionPosition: Middle\n", want: []string{`"Middle": want Latest or Earliest`}},
		{name: "negative parallelism", body: base + "parallelism: -1\n", want: []string{`field "parallelism": -1`}},
		{name: "zero timeout", body: base + "timeoutMs: 0\n", want: []string{`field "timeoutMs"`}},
		{name: "dlq without retries", body: base + "deadLetterTopic: dlq\n", want: []string{"needs maxMessageRetries"}},
		{name: "bad retry key", body: base + "userConfig:\n  fnhost.maxMessageRetries: lots\n", want: []string{`field "userConfig.fnhost.maxMessageRetries": lots`}},
		{name: "bad backoff", body: base + "userConfig:\n  fnhost.retryBackoff: soon\n", want: []string{`fnhost.retryBackoff": soon`}},
		{name: "output is input", body: base + "output: in\n", want: []string{"consume its own output"}},
		{name: "bad topic", body: "name: fn\ngo: fn\ninputs: [a/b]\n", want: []string{`field "inputs.0": "a/b"`}},
		{name: "bad domain", body: "name: fn\ngo: fn\ninputs: ['http://a/b/c']\n", want: []string{"persistent or non-persistent"}},
		{name: "bad pattern", body: "name: fn\ngo: fn\ntopicsPattern: 'in-(['\n", want: []string{"not a valid regular expression"}},
		{name: "schema input", body: "name: fn\ngo: fn\ninputSpecs:\n  in:\n    schemaType: avro\n", want: []string{"schemas and serdes are not supported"}},
		{name: "snappy", body: base + "producerConfig:\n  compressionType: SNAPPY\n", want: []string{"SNAPPY is not supported"}},
		{name: "secrets", body: base + "secrets:\n  a: b\n", want: []string{`field "secrets": not supported`}},
		{name: "several problems at once", body: "name: fn\ngo: fn\nparallelism: -2\nprocessingGuarantees: X\n", want: []string{"inputs", "parallelism", "processingGuarantees"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := writeManifest(t, tc.body)
			_, err := Load(p)
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), p), "the error names the file: %v", err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestLoadDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "fn"), []byte("#!/bin/sh\n"), 0o755))
	write := func(name, body string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
	write("a.yaml", base)
	write("b.yml", strings.Replace(base, "name: fn", "name: other", 1))
	write("notes.txt", "ignored")
	fns, err := LoadDir(dir)
	require.NoError(t, err)
	require.Len(t, fns, 2)
	assert.Equal(t, "fn", fns[0].Name)

	write("c.yaml", base) // same name as a.yaml
	write("d.yaml", "name: broken\n")
	_, err = LoadDir(dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "also defined in")
	assert.Contains(t, err.Error(), "d.yaml")

	_, err = LoadDir(t.TempDir())
	assert.ErrorContains(t, err, "no manifests")
}

// TestProjectManifests keeps the repository's own manifests valid.
func TestProjectManifests(t *testing.T) {
	t.Parallel()
	fns, err := LoadDir(filepath.Join("..", "..", "manifests", "functions"))
	require.NoError(t, err)
	assert.GreaterOrEqual(t, len(fns), 6)
	for _, f := range fns {
		assert.NotEmpty(t, f.Source, "%s: go names the source directory", f.Path)
	}
}

func TestRetryDefaults(t *testing.T) {
	t.Parallel()
	f, err := Load(writeManifest(t, base+"maxMessageRetries: 0\n"))
	require.NoError(t, err)
	assert.Equal(t, 0, f.MaxRetries)
	assert.Equal(t, "persistent://public/default/in-fn-DLQ", f.DeadLetterTopic)

	_, err = Load(writeManifest(t, base+"maxMessageRetries: 2\nretainOrdering: true\n"))
	assert.ErrorContains(t, err, "retries need a Shared or Key_Shared subscription")
}
