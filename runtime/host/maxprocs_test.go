package host

import (
	"testing"

	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/stretchr/testify/assert"

	"github.com/fnhost/fnhost/internal/manifest"
)

func TestMaxProcs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		resources *utils.Resources
		want      int
	}{
		{"no resources: the plugin default", nil, 0},
		{"no cpu", &utils.Resources{RAM: 1 << 30}, 0},
		{"one cpu", &utils.Resources{CPU: 1}, 1},
		{"a fraction rounds up", &utils.Resources{CPU: 1.5}, 2},
		{"below one", &utils.Resources{CPU: 0.25}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := &manifest.Function{Config: utils.FunctionConfig{Resources: tc.resources}}
			assert.Equal(t, tc.want, maxProcs(m))
		})
	}
}
