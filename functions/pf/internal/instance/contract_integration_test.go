//go:build integration

package instance

import (
	"testing"

	"github.com/fnhost/fnhost/internal/engine/enginetest"
)

// TestContractPulsar runs the engine's contract suite through the instance's adapters against
// the real standalone: real consumers, dead-letter policy and producers.
func TestContractPulsar(t *testing.T) {
	enginetest.Run(t, instanceLauncher{}, enginetest.NewPulsarBus())
}
