package pulsarinvoke

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeReaderClient is a pulsar.Client that only creates readers; each reader blocks in Next
// until its ctx ends and records its Close.
type fakeReaderClient struct {
	pulsar.Client

	mu      sync.Mutex
	created map[string]int
	readers []*fakeReader
	fail    error // CreateReader's error, when set
}

type fakeReader struct {
	pulsar.Reader
	topic  string
	mu     sync.Mutex
	closed bool
}

func (c *fakeReaderClient) CreateReader(o pulsar.ReaderOptions) (pulsar.Reader, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return nil, c.fail
	}
	if c.created == nil {
		c.created = map[string]int{}
	}
	c.created[o.Topic]++
	r := &fakeReader{topic: o.Topic}
	c.readers = append(c.readers, r)
	return r, nil
}

func (c *fakeReaderClient) counts() (created map[string]int, open int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	created = map[string]int{}
	for k, v := range c.created {
		created[k] = v
	}
	for _, r := range c.readers {
		if !r.isClosed() {
			open++
		}
	}
	return created, open
}

func (r *fakeReader) Next(ctx context.Context) (pulsar.Message, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (r *fakeReader) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
}

func (r *fakeReader) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// TestFallbackReadersCloseWhenIdle runs on synctest's fake clock: time moves only when every
// goroutine of the bubble is blocked, so the idle bound is exact and nothing sleeps for real.
func TestFallbackReadersCloseWhenIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const idle = 5 * time.Minute
		client := &fakeReaderClient{}
		ctx, stop := context.WithCancel(t.Context())
		w := newWatchers(ctx, client, newTable(16), slog.New(slog.DiscardHandler), idle)

		releaseA, err := w.ensure(t.Context(), "a")
		require.NoError(t, err)
		releaseB, err := w.ensure(t.Context(), "b")
		require.NoError(t, err)
		releaseB2, err := w.ensure(t.Context(), "b") // a second call on b shares its reader
		require.NoError(t, err)
		assert.Equal(t, 2, w.readers())

		// a is released; b is still held by one call.
		releaseA()
		releaseB()
		time.Sleep(idle - time.Second) // fake time: just short of the bound
		synctest.Wait()
		assert.Equal(t, 2, w.readers(), "closed before the idle bound")

		time.Sleep(idle) // well past a's bound
		synctest.Wait()
		created, open := client.counts()
		assert.Equal(t, 1, w.readers(), "a's idle reader is closed, b's held one stays")
		assert.Equal(t, 1, open)
		assert.Equal(t, map[string]int{"a": 1, "b": 1}, created)

		// b's last call goes: b closes after the bound too.
		releaseB2()
		releaseB2() // idempotent
		time.Sleep(idle + idle/2)
		synctest.Wait()
		assert.Equal(t, 0, w.readers())
		_, open = client.counts()
		assert.Zero(t, open)

		// A new call reopens a's reader.
		releaseA2, err := w.ensure(t.Context(), "a")
		require.NoError(t, err)
		created, open = client.counts()
		assert.Equal(t, 2, created["a"])
		assert.Equal(t, 1, open)
		releaseA2()

		stop()
		require.NoError(t, w.close(t.Context()))
		_, open = client.counts()
		assert.Zero(t, open, "close closes every reader")
		_, err = w.ensure(t.Context(), "a")
		assert.Error(t, err, "closed")
	})
}

// TestFallbackReaderFailureIsRetried: a reader that could not be created is retried by a later
// call after retryAfter, and a failed entry holds no reader.
func TestFallbackReaderFailureIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client := &fakeReaderClient{fail: errors.New("broker says no")}
		ctx, stop := context.WithCancel(t.Context())
		defer stop()
		w := newWatchers(ctx, client, newTable(16), slog.New(slog.DiscardHandler), time.Hour)
		release, err := w.ensure(t.Context(), "a")
		release()
		require.ErrorContains(t, err, "broker says no")

		client.mu.Lock()
		client.fail = nil
		client.mu.Unlock()
		release, err = w.ensure(t.Context(), "a")
		release()
		require.Error(t, err, "retried before retryAfter")

		time.Sleep(retryAfter)
		release, err = w.ensure(t.Context(), "a")
		defer release()
		require.NoError(t, err)
		assert.Equal(t, 1, w.readers())
		stop()
		require.NoError(t, w.close(t.Context()))
	})
}
