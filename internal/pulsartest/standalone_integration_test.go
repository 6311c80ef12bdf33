//go:build integration

package pulsartest_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/internal/pulsartest"
)

// TestProduceConsume proves the broker stores and delivers messages with their keys and
// properties intact.
func TestProduceConsume(t *testing.T) {
	t.Parallel()
	client := pulsartest.Client(t)
	topic := pulsartest.Topic(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	consumer, err := client.Subscribe(pulsar.ConsumerOptions{
		Topic:                       topic,
		SubscriptionName:            "check",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
	})
	require.NoError(t, err)
	defer consumer.Close()
	producer, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	require.NoError(t, err)
	defer producer.Close()

	const n = 50
	for i := range n {
		_, err := producer.Send(ctx, &pulsar.ProducerMessage{
			Payload:    fmt.Appendf(nil, "payload-%d", i),
			Key:        fmt.Sprintf("key-%d", i%7),
			Properties: map[string]string{"seq": fmt.Sprint(i), "kind": "check"},
		})
		require.NoError(t, err, "send %d", i)
	}
	for i := range n {
		msg, err := consumer.Receive(ctx)
		require.NoError(t, err, "receive %d", i)
		assert.Equal(t, fmt.Sprintf("payload-%d", i), string(msg.Payload()))
		assert.Equal(t, fmt.Sprintf("key-%d", i%7), msg.Key())
		assert.Equal(t, map[string]string{"seq": fmt.Sprint(i), "kind": "check"}, msg.Properties())
		require.NoError(t, consumer.Ack(msg))
	}
}

// TestAdminAPI proves the admin REST API, through pulsar-client-go's pulsaradmin, serves the
// standalone cluster and its default namespaces.
func TestAdminAPI(t *testing.T) {
	t.Parallel()
	admin := pulsartest.Admin(t)

	clusters, err := admin.Clusters().List()
	require.NoError(t, err)
	assert.Contains(t, clusters, "standalone")

	tenants, err := admin.Tenants().List()
	require.NoError(t, err)
	assert.Subset(t, tenants, []string{"public", "pulsar"})

	namespaces, err := admin.Namespaces().GetNamespaces("public")
	require.NoError(t, err)
	assert.True(t, slices.Contains(namespaces, "public/default"), "namespaces of public: %v", namespaces)
	assert.True(t, slices.Contains(namespaces, "public/functions"), "the functions worker's namespace is missing: %v", namespaces)
}

// TestAdminCLI proves the real pulsar-admin CLI runs against the standalone and that the
// functions worker answers.
func TestAdminCLI(t *testing.T) {
	t.Parallel()
	pulsartest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	out, err := pulsartest.AdminCLI(ctx, t, "tenants", "list")
	require.NoError(t, err)
	tenants := strings.Fields(out)
	assert.Subset(t, tenants, []string{"public", "pulsar"})

	_, err = pulsartest.AdminCLI(ctx, t, "functions", "list", "--tenant", "public", "--namespace", "default")
	require.NoError(t, err, "the functions worker must answer")

	_, err = pulsartest.AdminCLI(ctx, t, "functions", "get", "--tenant", "public", "--namespace", "default", "--name", pulsartest.Name(t))
	require.Error(t, err, "a CLI error must surface as a non-zero exit")
	assert.Contains(t, err.Error(), "doesn't exist")
}
