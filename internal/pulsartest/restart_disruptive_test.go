//go:build integration && disruptive

package pulsartest_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/internal/pulsartest"
)

// TestDurableAcrossRestart proves messages are on disk: produced, the standalone stopped and
// started again, every message is still there for its subscription. It restarts the shared
// standalone, so it runs alone (make test-disruptive), after the other integration tests.
func TestDurableAcrossRestart(t *testing.T) {
	pulsartest.Require(t)
	script := filepath.Join(pulsartest.Root(t), "scripts", "pulsar")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	status, err := exec.CommandContext(ctx, script, "status").Output()
	require.NoError(t, err, "scripts/pulsar status")
	require.True(t, strings.HasPrefix(string(status), "running: "),
		"this test restarts the standalone, so scripts/pulsar must own it; status says: %s", status)

	topic := pulsartest.Topic(t)
	const sub, n = "durable", 200
	func() {
		client := pulsartest.Client(t)
		consumer, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: sub})
		require.NoError(t, err)
		consumer.Close() // the subscription now holds every message produced from here on
		producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
		require.NoError(t, err)
		defer producer.Close()
		for i := range n {
			_, err := producer.Send(ctx, &pulsar.ProducerMessage{
				Payload:    fmt.Appendf(nil, "durable-%d", i),
				Key:        fmt.Sprint(i % 5),
				Properties: map[string]string{"i": fmt.Sprint(i)},
			})
			require.NoError(t, err)
		}
		client.Close()
	}()

	for _, step := range []string{"stop", "start"} {
		out, err := exec.CommandContext(ctx, script, step).CombinedOutput()
		require.NoError(t, err, "scripts/pulsar %s: %s", step, out)
	}

	client := pulsartest.Client(t)
	consumer, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: sub})
	require.NoError(t, err)
	defer consumer.Close()
	for i := range n {
		msg, err := consumer.Receive(ctx)
		require.NoError(t, err, "message %d of %d after the restart", i, n)
		assert.Equal(t, fmt.Sprintf("durable-%d", i), string(msg.Payload()))
		assert.Equal(t, fmt.Sprint(i%5), msg.Key())
		assert.Equal(t, fmt.Sprint(i), msg.Properties()["i"])
		require.NoError(t, consumer.Ack(msg))
	}
}
