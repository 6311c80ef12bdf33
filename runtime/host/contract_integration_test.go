//go:build integration

package host

import (
	"testing"

	"github.com/fnhost/fnhost/internal/engine/enginetest"
)

// TestContractPulsar runs the engine's contract suite through the host runtime's adapters
// (plugin processes) against the real standalone: real consumers, dead-letter policy and
// producers.
func TestContractPulsar(t *testing.T) {
	enginetest.Run(t, &hostLauncher{}, enginetest.NewPulsarBus())
}
