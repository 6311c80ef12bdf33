package trigger

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMemoryStoreBounds(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	m := NewMemoryStore(3, time.Minute)
	m.now = func() time.Time { return now }
	for i := range 5 {
		require.NoError(t, m.Put(t.Context(), Invocation{ID: fmt.Sprint(i), Status: StatusAccepted}))
	}
	assert.Equal(t, 3, m.Len())
	_, err := m.Get(t.Context(), "1")
	assert.ErrorIs(t, err, ErrInvocationNotFound) // evicted, oldest first
	require.NoError(t, m.Put(t.Context(), Invocation{ID: "4", Status: StatusSucceeded}))
	got, err := m.Get(t.Context(), "4")
	require.NoError(t, err)
	assert.Equal(t, StatusSucceeded, got.Status)

	now = now.Add(2 * time.Minute)
	_, err = m.Get(t.Context(), "4")
	assert.ErrorIs(t, err, ErrInvocationNotFound) // expired
	require.NoError(t, m.Put(t.Context(), Invocation{ID: "new"}))
	assert.Equal(t, 1, m.Len()) // the expired ones are swept on Put
}

func TestJournalWindow(t *testing.T) {
	t.Parallel()
	cfg := Config{ReplayInvocations: 2, ReplayEvents: 3, ReplayBytes: 10, ReplayTTL: time.Minute}
	js := newJournals(&cfg)
	now := time.Unix(1000, 0)
	js.now = func() time.Time { return now }
	j := js.add("a", Function{})
	for i := range 5 {
		j.append(Output{Seq: int64(i), Payload: []byte("xx")})
	}
	_, _, _, ok := j.since(0)
	assert.False(t, ok, "output 1 was dropped (3 events kept)")
	outs, end, _, ok := j.since(1)
	require.True(t, ok)
	assert.Len(t, outs, 3)
	assert.Nil(t, end)
	j.append(Output{Seq: 5, Payload: []byte("123456789")}) // byte bound: only the newest fits
	outs, _, _, ok = j.since(4)
	require.True(t, ok)
	assert.Len(t, outs, 1)

	j.finish(&streamEnd{Outputs: 6}, now)
	js.add("b", Function{})
	assert.NotNil(t, js.get("a"))
	now = now.Add(2 * time.Minute)
	assert.Nil(t, js.get("a"), "expired after the TTL")
	js.add("c", Function{})
	js.add("d", Function{})
	assert.Nil(t, js.get("b"), "evicted over the count limit")
	assert.NotNil(t, js.get("d"))
}

func TestIDs(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		id := newID()
		require.True(t, validID(id), id)
		require.False(t, seen[id])
		seen[id] = true
	}
	assert.False(t, validID("../etc/passwd"))
}
