// Package sleep pauses a goroutine for a while, or less when its context ends first: the
// back-off of retry loops across fnhost.
package sleep

import (
	"context"
	"time"
)

// For waits for d, or until ctx is done. It reports whether the whole of d passed (false:
// ctx ended first).
func For(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
