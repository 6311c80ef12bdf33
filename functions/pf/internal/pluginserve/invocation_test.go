package pluginserve

import (
	"log/slog"
	"sync"
	"testing"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/assert"

	"github.com/fnhost/fnhost/functions/pf/plugin/pluginpb"
)

// TestInputMessageID: the id is decoded on first use, once, from any goroutine; an id that
// does not decode, or none, is the earliest id.
func TestInputMessageID(t *testing.T) {
	t.Parallel()
	valid := pulsar.EarliestMessageID().Serialize()
	tests := []struct {
		name string
		raw  []byte
		want []byte
	}{
		{"valid", valid, valid},
		{"none", nil, pulsar.EarliestMessageID().Serialize()},
		{"garbage", []byte{0xff, 0xff}, pulsar.EarliestMessageID().Serialize()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var m inputMessage
			m.fill(&pluginpb.InvokeRequest{MessageId: tc.raw, Payload: []byte("x")}, slog.New(slog.DiscardHandler))
			var wg sync.WaitGroup
			ids := make([][]byte, 4)
			for i := range ids {
				wg.Go(func() { ids[i] = m.ID().Serialize() })
			}
			wg.Wait()
			for _, id := range ids {
				assert.Equal(t, tc.want, id)
			}
			assert.Equal(t, []byte("x"), m.Payload())
		})
	}
}
