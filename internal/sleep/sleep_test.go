package sleep

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestFor(t *testing.T) {
	t.Parallel()
	assert.True(t, For(context.Background(), time.Microsecond))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.False(t, For(ctx, time.Hour), "an ended context cuts it short")
}
