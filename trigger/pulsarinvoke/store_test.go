package pulsarinvoke

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/trigger"
)

// fakeProducer records what it is sent, or fails with err.
type fakeProducer struct {
	pulsar.Producer
	mu     sync.Mutex
	sent   []*pulsar.ProducerMessage
	err    error
	closed int
}

func (p *fakeProducer) Send(_ context.Context, m *pulsar.ProducerMessage) (pulsar.MessageID, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return nil, p.err
	}
	p.sent = append(p.sent, m)
	return nil, nil
}

func (p *fakeProducer) Close() { p.mu.Lock(); p.closed++; p.mu.Unlock() }

// fakeView is a table view whose content the test sets through deliver.
type fakeView struct {
	pulsar.TableView
	mu     sync.Mutex
	data   map[string][]byte
	closed int
}

func (v *fakeView) Get(key string) any {
	v.mu.Lock()
	defer v.mu.Unlock()
	if b, ok := v.data[key]; ok {
		return b
	}
	return nil
}

func (v *fakeView) Close() { v.mu.Lock(); v.closed++; v.mu.Unlock() }

// deliver is the table view reading message m: it stores it and calls the store's listener.
func (v *fakeView) deliver(t *testing.T, s *Store, key string, payload []byte) {
	t.Helper()
	v.mu.Lock()
	v.data[key] = payload
	v.mu.Unlock()
	require.NoError(t, s.seen(key, payload))
}

func newFakeStore(t *testing.T) (*Store, *fakeProducer, *fakeView) {
	t.Helper()
	p, v := &fakeProducer{}, &fakeView{data: map[string][]byte{}}
	s := &Store{topic: DefaultStoreTopic, log: slog.New(slog.DiscardHandler), producer: p, view: v,
		cache: newRecentCache(8, time.Minute), closed: make(chan struct{}), done: make(chan struct{})}
	return s, p, v
}

func sampleInvocation(id string, status trigger.Status) trigger.Invocation {
	accepted := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	started, finished := accepted.Add(time.Second), accepted.Add(2*time.Second)
	inv := trigger.Invocation{ID: id, Function: trigger.Function{Tenant: "public", Namespace: "default", Name: "echo"},
		Status: status, AcceptedAt: accepted, Deadline: accepted.Add(time.Minute)}
	if status != trigger.StatusAccepted {
		inv.StartedAt = &started
	}
	if status.Final() {
		inv.FinishedAt = &finished
		inv.Outputs = []trigger.Output{
			{Seq: 0, Payload: []byte("héllo"), Key: "k", Properties: map[string]string{"a": "b"}, ContentType: "text/plain"},
			{Seq: 1, Payload: []byte{0xff, 0x00, 0xfe}},
		}
	}
	if status == trigger.StatusFailed {
		inv.Error = &trigger.ErrorInfo{Code: "function_error", Message: "boom"}
	}
	return inv
}

func TestStoreRoundTrip(t *testing.T) {
	t.Parallel()
	for _, status := range []trigger.Status{trigger.StatusAccepted, trigger.StatusRunning, trigger.StatusSucceeded, trigger.StatusFailed} {
		t.Run(string(status), func(t *testing.T) {
			t.Parallel()
			s, p, v := newFakeStore(t)
			want := sampleInvocation("id-"+string(status), status)
			require.NoError(t, s.Put(context.Background(), want))
			require.Len(t, p.sent, 1)
			assert.Equal(t, want.ID, p.sent[0].Key, "the key is the id, so compaction keeps the latest per id")

			// From this store's cache, then from the table view alone.
			got, err := s.Get(context.Background(), want.ID)
			require.NoError(t, err)
			assert.Equal(t, want, got)
			v.deliver(t, s, want.ID, p.sent[0].Payload)
			assert.Zero(t, s.cache.len())
			got, err = s.Get(context.Background(), want.ID)
			require.NoError(t, err)
			assert.Equal(t, want, got)
		})
	}
}

func TestStoreReadsOwnWritesUntilTheViewHasThem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, p, v := newFakeStore(t)
	accepted, running := sampleInvocation("a", trigger.StatusAccepted), sampleInvocation("a", trigger.StatusRunning)
	require.NoError(t, s.Put(ctx, accepted))
	require.NoError(t, s.Put(ctx, running))

	// The view catches up with the first Put only: the second is still the answer.
	v.deliver(t, s, "a", p.sent[0].Payload)
	got, err := s.Get(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, trigger.StatusRunning, got.Status)
	assert.Equal(t, 1, s.cache.len())

	// Then with the second: the cache lets go, and a later update by another replica shows.
	v.deliver(t, s, "a", p.sent[1].Payload)
	assert.Zero(t, s.cache.len())
	other := sampleInvocation("a", trigger.StatusSucceeded)
	b, err := json.Marshal(other)
	require.NoError(t, err)
	v.deliver(t, s, "a", b)
	got, err = s.Get(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, other, got)
}

func TestStoreGetUnknown(t *testing.T) {
	t.Parallel()
	s, _, _ := newFakeStore(t)
	_, err := s.Get(context.Background(), "nope")
	assert.ErrorIs(t, err, trigger.ErrInvocationNotFound)
}

func TestStoreGetCorruptRecord(t *testing.T) {
	t.Parallel()
	s, _, v := newFakeStore(t)
	v.deliver(t, s, "x", []byte("{not json"))
	_, err := s.Get(context.Background(), "x")
	require.Error(t, err)
	assert.NotErrorIs(t, err, trigger.ErrInvocationNotFound)
}

func TestStorePutFails(t *testing.T) {
	t.Parallel()
	s, p, _ := newFakeStore(t)
	p.err = errors.New("send timeout")
	err := s.Put(context.Background(), sampleInvocation("a", trigger.StatusAccepted))
	assert.ErrorIs(t, err, trigger.ErrUnavailable)
	assert.Zero(t, s.cache.len(), "a record that was not stored is not cached")
	_, err = s.Get(context.Background(), "a")
	assert.ErrorIs(t, err, trigger.ErrInvocationNotFound)
}

func TestStoreClose(t *testing.T) {
	t.Parallel()
	s, p, v := newFakeStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { assert.NoError(t, s.Close(ctx)) })
	}
	wg.Wait()
	assert.Equal(t, 1, p.closed)
	assert.Equal(t, 1, v.closed)
	assert.ErrorIs(t, s.Put(ctx, sampleInvocation("a", trigger.StatusAccepted)), errStoreClosed)
	_, err := s.Get(ctx, "a")
	assert.ErrorIs(t, err, errStoreClosed)
}

func TestRecentCacheBounds(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	c := newRecentCache(3, time.Minute)
	c.now = func() time.Time { return now }

	for _, id := range []string{"a", "b", "c", "d"} {
		c.put(id, []byte(id))
	}
	assert.Equal(t, 3, c.len(), "the limit holds")
	_, ok := c.get("a")
	assert.False(t, ok, "the oldest Put goes first")

	c.put("b", []byte("b2")) // a re-Put makes b the newest
	c.put("e", []byte("e"))
	_, ok = c.get("c")
	assert.False(t, ok)
	b, ok := c.get("b")
	require.True(t, ok)
	assert.Equal(t, "b2", string(b))

	now = now.Add(time.Minute)
	_, ok = c.get("b")
	assert.False(t, ok, "expired")
	c.put("f", []byte("f"))
	assert.Equal(t, 1, c.len(), "a put drops the expired entries")
}

func TestRecentCacheRemove(t *testing.T) {
	t.Parallel()
	c := newRecentCache(10, time.Minute)
	first := c.put("a", []byte("1"))
	c.put("a", []byte("2"))
	c.remove("a", first) // a failed first Put must not drop the second
	_, ok := c.get("a")
	assert.True(t, ok)

	c.removeIfEqual("a", []byte("1"))
	_, ok = c.get("a")
	assert.True(t, ok, "the view delivering an older record keeps the newer one")
	c.removeIfEqual("a", []byte("2"))
	_, ok = c.get("a")
	assert.False(t, ok)
	c.removeIfEqual("zz", nil) // unknown ids and deletions are fine
}

func TestStoreConfig(t *testing.T) {
	t.Parallel()
	cfg := StoreConfig{Client: fakeClient{}}
	cfg.setDefaults()
	require.NoError(t, cfg.Validate())
	assert.Equal(t, DefaultStoreTopic, cfg.Topic)

	for _, tc := range []struct {
		name string
		cfg  StoreConfig
	}{
		{"no client", StoreConfig{Topic: DefaultStoreTopic}},
		{"short topic", StoreConfig{Client: fakeClient{}, Topic: "fnhost-invocations"}},
		{"non-persistent", StoreConfig{Client: fakeClient{}, Topic: "non-persistent://public/default/x"}},
		{"negative cache", StoreConfig{Client: fakeClient{}, CacheSize: -1}},
		{"negative ttl", StoreConfig{Client: fakeClient{}, CacheTTL: -time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.cfg.setDefaults()
			assert.Error(t, tc.cfg.Validate())
		})
	}
}

type fakeClient struct{ pulsar.Client }

func TestSetCompaction(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		status  int
		wantErr bool
	}{
		{"ok", http.StatusNoContent, false},
		{"refused", http.StatusMethodNotAllowed, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			calls := map[string]string{}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body) // a test server: a short body shows in the assertion
				mu.Lock()
				calls[r.Method+" "+r.URL.Path] = string(b)
				mu.Unlock()
				w.WriteHeader(tc.status)
			}))
			defer srv.Close()
			cfg := StoreConfig{Client: fakeClient{}, Topic: "persistent://t/ns/recs", AdminURL: srv.URL + "/", CompactionThreshold: 1234}
			cfg.setDefaults()
			err := setCompaction(context.Background(), cfg)
			if tc.wantErr {
				assert.Error(t, err)
			} else {
				assert.NoError(t, err)
			}
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, map[string]string{"POST /admin/v2/persistent/t/ns/recs/compactionThreshold": "1234"}, calls)
		})
	}
}
