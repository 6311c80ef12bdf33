//go:build integration

package pulsarinvoke_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/internal/pulsartest"
	"github.com/fnhost/fnhost/trigger"
	"github.com/fnhost/fnhost/trigger/pulsarinvoke"
)

// newStore opens a store on topic, as one trigger instance would, with its own client;
// closed when the test ends unless the test closes it first.
func newStore(t *testing.T, topic string) *pulsarinvoke.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := pulsarinvoke.NewStore(ctx, pulsarinvoke.StoreConfig{Client: pulsartest.Client(t), Topic: topic,
		AdminURL: pulsartest.AdminURL(), Logger: pulsartest.Logger(t)})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, st.Close(ctx))
	})
	return st
}

func record(id string, status trigger.Status) trigger.Invocation {
	now := time.Now().UTC().Truncate(time.Millisecond)
	inv := trigger.Invocation{ID: id, Function: trigger.Function{Tenant: "public", Namespace: "default", Name: "echo"},
		Status: status, AcceptedAt: now, Deadline: now.Add(time.Minute)}
	if status.Final() {
		inv.FinishedAt = &now
		inv.Outputs = []trigger.Output{{Seq: 0, Payload: []byte("out"), ContentType: "text/plain"}}
	}
	return inv
}

// eventually waits until st answers id with status.
func eventually(t *testing.T, st *pulsarinvoke.Store, id string, status trigger.Status) {
	t.Helper()
	require.Eventually(t, func() bool {
		got, err := st.Get(context.Background(), id)
		return err == nil && got.Status == status
	}, 20*time.Second, 20*time.Millisecond, "invocation %s never became %s", id, status)
}

func TestStoreAcrossInstancesAndRestarts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic := pulsartest.Topic(t)
	a := newStore(t, topic)

	// Read-your-writes in one instance, at once.
	want := record("inv-1", trigger.StatusAccepted)
	require.NoError(t, a.Put(ctx, want))
	got, err := a.Get(ctx, "inv-1")
	require.NoError(t, err)
	assert.Equal(t, want, got)
	_, err = a.Get(ctx, "unknown")
	assert.ErrorIs(t, err, trigger.ErrInvocationNotFound)

	// Another trigger instance sees it, and its later updates.
	b := newStore(t, topic)
	eventually(t, b, "inv-1", trigger.StatusAccepted)
	done := record("inv-1", trigger.StatusSucceeded)
	require.NoError(t, a.Put(ctx, done))
	eventually(t, b, "inv-1", trigger.StatusSucceeded)
	got, err = b.Get(ctx, "inv-1")
	require.NoError(t, err)
	assert.Equal(t, done, got)

	// An update by B reaches A, whose own copy does not shadow it.
	require.NoError(t, b.Put(ctx, record("inv-1", trigger.StatusFailed)))
	eventually(t, a, "inv-1", trigger.StatusFailed)

	// A restarts: the new instance has every record as soon as it is created.
	require.NoError(t, a.Put(ctx, record("inv-2", trigger.StatusRunning)))
	require.NoError(t, a.Close(ctx))
	_, err = a.Get(ctx, "inv-1")
	assert.Error(t, err, "a closed store answers nothing")
	assert.False(t, errors.Is(err, trigger.ErrInvocationNotFound))
	a2 := newStore(t, topic)
	for id, status := range map[string]trigger.Status{"inv-1": trigger.StatusFailed, "inv-2": trigger.StatusRunning} {
		got, err := a2.Get(ctx, id)
		require.NoError(t, err, id)
		assert.Equal(t, status, got.Status, id)
	}
}
