package pluginserve

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
)

type ctxKey struct{}

func newInvocationCtx(stream context.Context, deadline time.Time) *invocationCtx {
	c := &invocationCtx{}
	c.init(context.WithoutCancel(stream), stream, deadline)
	return c
}

// waitDone waits for ctx's Done within a bound.
func waitDone(t *testing.T, ctx context.Context) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed")
	}
}

func TestInvocationCtxDeadlineWithoutDone(t *testing.T) {
	t.Parallel()
	c := newInvocationCtx(context.Background(), time.Now().Add(-time.Millisecond))
	assert.ErrorIs(t, c.Err(), context.DeadlineExceeded)
	assert.ErrorIs(t, c.cause(), call.ErrDeadline)
	assert.ErrorIs(t, context.Cause(c), context.DeadlineExceeded, "Cause falls back to Err, not the stream's")
	select {
	case <-c.Done(): // made after the end: closed at once
	default:
		t.Fatal("Done of an ended context is open")
	}
	d, ok := c.Deadline()
	assert.True(t, ok)
	assert.False(t, d.IsZero())
}

func TestInvocationCtxDeadlineThroughDone(t *testing.T) {
	t.Parallel()
	c := newInvocationCtx(context.Background(), time.Now().Add(20*time.Millisecond))
	require.NoError(t, c.Err())
	waitDone(t, c)
	assert.ErrorIs(t, c.Err(), context.DeadlineExceeded)
	assert.ErrorIs(t, c.cause(), call.ErrDeadline)
}

func TestInvocationCtxCancel(t *testing.T) {
	t.Parallel()
	c := newInvocationCtx(context.Background(), time.Time{})
	_, ok := c.Deadline()
	assert.False(t, ok)
	done := c.Done()
	// A context derived from it, as a function would make for a call of its own.
	child, cancel := context.WithTimeout(c, time.Hour)
	defer cancel()
	c.cancel(errCanceled)
	<-done
	waitDone(t, child)
	assert.ErrorIs(t, c.Err(), context.Canceled)
	assert.ErrorIs(t, c.cause(), errCanceled)
	c.cancel(errors.New("later")) // the first end stands
	assert.ErrorIs(t, c.cause(), errCanceled)
}

func TestInvocationCtxStreamEnd(t *testing.T) {
	t.Parallel()
	stream, end := context.WithCancelCause(context.WithValue(context.Background(), ctxKey{}, "v"))
	c := newInvocationCtx(stream, time.Now().Add(time.Hour))
	assert.Equal(t, "v", c.Value(ctxKey{}), "the stream's values")
	waiting := newInvocationCtx(stream, time.Time{})
	done := waiting.Done()
	gone := errors.New("stream gone")
	end(gone)
	<-done
	assert.ErrorIs(t, waiting.cause(), gone)
	// Without Done, Err notices the end all the same.
	assert.ErrorIs(t, c.Err(), context.Canceled)
	assert.ErrorIs(t, c.cause(), gone)
}

func TestEndKind(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "ERROR_KIND_USER", endKind(nil).String())
	assert.Equal(t, "ERROR_KIND_DEADLINE", endKind(call.ErrDeadline).String())
	assert.Equal(t, "ERROR_KIND_CANCELED", endKind(errCanceled).String())
}

func TestInvocationCtxAfterFunc(t *testing.T) {
	t.Parallel()
	c := newInvocationCtx(context.Background(), time.Time{})
	ran := make(chan struct{})
	c.AfterFunc(func() { close(ran) })
	stopped := c.AfterFunc(func() { t.Error("a stopped function ran") })
	assert.True(t, stopped(), "stopped before the end")
	assert.False(t, stopped(), "stopped once")
	c.cancel(errCanceled)
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("the function registered with AfterFunc did not run")
	}
	late := make(chan struct{})
	assert.False(t, c.AfterFunc(func() { close(late) })(), "after the end it runs at once")
	<-late
	assert.Equal(t, "pluginserve.invocationCtx", fmt.Sprint(c))
}
