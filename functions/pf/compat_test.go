package pf

import (
	"context"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewFuncContext(t *testing.T) {
	t.Parallel()
	conf := `{"pulsarServiceURL":"pulsar://127.0.0.1:6650","tenant":"acme","nameSpace":"ops","name":"fn","instanceID":2,"autoAck":true,` +
		`"sourceSpecsTopic":"persistent://acme/ops/in","sinkSpecsTopic":"persistent://acme/ops/out","userConfig":"{\"greeting\":\"hi\",\"n\":3}"}`
	for _, argv := range [][]string{
		{"-instance-conf", conf},
		{"--instance-conf", conf},
		{"-instance-conf=" + conf},
	} {
		fc := newFuncContext(argv)
		assert.Equal(t, "acme/ops/fn", fc.GetTenantAndNamespaceAndName())
		assert.Equal(t, 2, fc.GetInstanceID())
		assert.Equal(t, "hi", fc.GetUserConfValue("greeting"))
		assert.Equal(t, 3.0, fc.GetUserConfMap()["n"])
	}

	fc := newFuncContext([]string{"-user-config", "{}"})
	assert.Empty(t, fc.GetFuncName())
	assert.NotNil(t, fc.GetUserConfMap())
	assert.Error(t, fc.Emit(context.Background(), []byte("x")))
	_, err := fc.NewOutputMessageWithError("t")
	require.Error(t, err)
	assert.Nil(t, fc.NewOutputMessage("t"))
}

// TestUpstreamProgramImports keeps examples/upstream a program for Apache's SDK but for its
// import paths: it may import the standard library, pulsar-client-go and the two SDK packages
// whose paths are the only change.
func TestUpstreamProgramImports(t *testing.T) {
	t.Parallel()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join("examples", "upstream", "main.go"), nil, parser.ImportsOnly)
	require.NoError(t, err)
	allowed := map[string]bool{
		"github.com/apache/pulsar-client-go/pulsar":     true,
		"github.com/fnhost/fnhost/functions/pf":         true, // upstream: github.com/apache/pulsar/pulsar-function-go/pf
		"github.com/fnhost/fnhost/functions/pf/logutil": true, // upstream: github.com/apache/pulsar/pulsar-function-go/logutil
	}
	for _, imp := range f.Imports {
		p := strings.Trim(imp.Path.Value, `"`)
		if strings.Contains(p, ".") {
			assert.True(t, allowed[p], "examples/upstream imports %s, which a function for Apache's SDK would not", p)
		}
	}
}
