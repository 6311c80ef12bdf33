// Package pluginserve is the plugin half of the fnhost plugin protocol: it serves a function to
// the host runtime over go-plugin's gRPC transport.
package pluginserve

import (
	"context"
	"errors"
	"io"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
)

// Serve serves h to the host runtime that launched this process, until the host stops it or
// ctx is cancelled.
func Serve(ctx context.Context, h call.Handler, stderr io.Writer) error {
	return errors.New("plugin mode: not implemented yet")
}
