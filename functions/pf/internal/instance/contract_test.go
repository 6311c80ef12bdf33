package instance

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
	"github.com/fnhost/fnhost/internal/engine"
	"github.com/fnhost/fnhost/internal/engine/enginetest"
)

// instanceLauncher runs the engine's contract suite through the instance: settings become the
// worker's instance config, parsed as the worker's would be, and the script runs in process
// as a call.Handler.
type instanceLauncher struct{}

func (instanceLauncher) Config(t testing.TB, s enginetest.Settings) engine.Config {
	t.Helper()
	if s.Guarantee == engine.EffectivelyOnce {
		t.Skip("the Go instance refuses EFFECTIVELY_ONCE")
	}
	details := map[string]any{
		"tenant": "public", "namespace": "default", "name": "fn", "autoAck": true,
		"processingGuarantees": map[engine.Guarantee]string{engine.AtLeastOnce: "ATLEAST_ONCE", engine.AtMostOnce: "ATMOST_ONCE",
			engine.Manual: "MANUAL"}[s.Guarantee],
		"retainOrdering":    s.Order == engine.Strict,
		"retainKeyOrdering": s.Order == engine.KeyOrdered,
		"source":            map[string]any{"inputSpecs": map[string]any{"persistent://public/default/in": map[string]any{}}, "timeoutMs": s.Timeout.Milliseconds()},
		"sink":              map[string]any{"topic": s.Output, "forwardSourceMessageProperty": s.Forward},
	}
	uc := map[string]any{}
	if s.MaxRetries >= 0 {
		uc["fnhost.maxMessageRetries"] = s.MaxRetries
	}
	if s.Lanes > 1 && s.Order != engine.Strict {
		uc["fnhost.concurrency"] = s.Lanes
	}
	ucJSON, err := json.Marshal(uc)
	require.NoError(t, err)
	details["userConfig"] = string(ucJSON)
	d, err := json.Marshal(details)
	require.NoError(t, err)
	cfg, err := ParseArgs(Args{ConfJSON: workerConf(t.(*testing.T), string(d), func(m map[string]any) {
		m["sinkSpecsTopic"] = s.Output
	})})
	require.NoError(t, err)
	return engineConfig(cfg, nil, nil)
}

func (instanceLauncher) Function(_ testing.TB, s enginetest.Settings) engine.Function {
	return &function{handler: call.Safe(scriptHandler), manual: s.Guarantee == engine.Manual}
}

// scriptHandler is enginetest.Script as a call.Handler.
func scriptHandler(ctx context.Context, _ call.Env, inv *call.Invocation) ([]byte, error) {
	return enginetest.Script(ctx, inv.Message.Payload(), invOps{inv})
}

type invOps struct{ inv *call.Invocation }

func (o invOps) Emit(ctx context.Context, payload []byte, key string, props map[string]string) error {
	return o.inv.Emit(ctx, call.Output{Payload: payload, Key: key, Properties: props})
}

func (o invOps) Ack() error { return o.inv.Ack() }

// TestContract runs the engine's contract suite through the instance's adapters.
func TestContract(t *testing.T) { enginetest.Run(t, instanceLauncher{}, enginetest.NewFakeBus()) }
