package host

import (
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/assert"
)

// TestProducerOptions: outputs get Pulsar Functions' defaults and the manifest's
// producerConfig; reply-to producers the same, batching for 1 ms only.
func TestProducerOptions(t *testing.T) {
	t.Parallel()
	m := fnManifest(t, "echo", "po", "in", "output: out\nproducerConfig:\n  compressionType: ZSTD\n  maxPendingMessages: 7\n")
	props := map[string]string{"application": "fnhost", "id": m.FQFN()}
	out := producerOptions(m, "out", false)
	assert.Equal(t, pulsar.ProducerOptions{Topic: "out", CompressionType: pulsar.ZSTD, MaxPendingMessages: 7,
		BatchingMaxPublishDelay: 10 * time.Millisecond, Properties: props}, out)
	reply := producerOptions(m, "replies", true)
	assert.Equal(t, pulsar.ProducerOptions{Topic: "replies", CompressionType: pulsar.ZSTD, MaxPendingMessages: 7,
		BatchingMaxPublishDelay: time.Millisecond, Properties: props}, reply)
}
