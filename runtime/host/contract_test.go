package host

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/functions/pf/plugin"
	"github.com/fnhost/fnhost/internal/engine"
	"github.com/fnhost/fnhost/internal/engine/enginetest"
	"github.com/fnhost/fnhost/internal/manifest"
	"github.com/fnhost/fnhost/runtime/pool"
)

// hostLauncher runs the engine's contract suite through the host runtime: settings become a
// manifest, validated as the runtime does, and the script runs in plugin processes
// (enginetest/scriptfn) of a pool.
type hostLauncher struct {
	once   sync.Once
	binary string
	err    error
}

func (l *hostLauncher) manifest(t testing.TB, s enginetest.Settings) *manifest.Function {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "name: fn\ngo: /bin/true\ninputs: [persistent://public/default/in]\n")
	if s.Output != "" {
		fmt.Fprintf(&b, "output: %s\n", s.Output)
	}
	fmt.Fprintf(&b, "processingGuarantees: %s\n", map[engine.Guarantee]string{engine.AtLeastOnce: "ATLEAST_ONCE",
		engine.AtMostOnce: "ATMOST_ONCE", engine.EffectivelyOnce: "EFFECTIVELY_ONCE", engine.Manual: "MANUAL"}[s.Guarantee])
	switch s.Order {
	case engine.Strict:
		b.WriteString("retainOrdering: true\n")
	case engine.KeyOrdered:
		b.WriteString("retainKeyOrdering: true\n")
	}
	if s.Timeout > 0 {
		fmt.Fprintf(&b, "timeoutMs: %d\n", s.Timeout.Milliseconds())
	}
	if s.MaxRetries >= 0 {
		fmt.Fprintf(&b, "maxMessageRetries: %d\n", s.MaxRetries)
	}
	if s.Forward {
		b.WriteString("forwardSourceMessageProperty: true\n")
	}
	m, err := manifest.Parse(filepath.Join(t.TempDir(), "fn.yaml"), []byte(b.String()))
	require.NoError(t, err, b.String())
	return m
}

func (l *hostLauncher) Config(t testing.TB, s enginetest.Settings) engine.Config {
	return engineConfig(l.manifest(t, s), max(s.Lanes, 1), nil, nil)
}

func (l *hostLauncher) Function(t testing.TB, s enginetest.Settings) engine.Function {
	t.Helper()
	l.once.Do(func() {
		l.binary = filepath.Join(buildDir(), "scriptfn")
		out, err := exec.Command("go", "build", "-o", l.binary, filepath.Join(repoRoot, "internal", "engine", "enginetest", "scriptfn")).CombinedOutput()
		if err != nil {
			l.err = fmt.Errorf("building scriptfn: %w: %s", err, out)
		}
	})
	require.NoError(t, l.err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := pool.Start(ctx, pool.Config{
		Binary:      l.binary,
		Info:        plugin.Info{Tenant: "public", Namespace: "default", Name: "fn", ManualAck: s.Guarantee == engine.Manual},
		MaxInFlight: max(s.Lanes, 1),
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		assert.NoError(t, p.Close(ctx))
	})
	return poolFunction{p}
}

// TestContract runs the engine's contract suite through the host runtime's adapters.
func TestContract(t *testing.T) { enginetest.Run(t, &hostLauncher{}, enginetest.NewFakeBus()) }
