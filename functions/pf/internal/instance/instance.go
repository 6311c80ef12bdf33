// Package instance runs a function as a Pulsar Functions Go instance, the way the functions
// worker launches it (-instance-conf / -instance-conf-path).
package instance

import (
	"context"
	"errors"
	"io"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
)

// Args are the command-line sources of the instance configuration; exactly one is set.
type Args struct {
	ConfJSON string // -instance-conf: the JSON document the worker passes
	ConfPath string // -instance-conf-path: a YAML file with the same keys
}

// Run parses the configuration and runs the instance until ctx is cancelled (SIGTERM), then
// closes everything and returns nil. A configuration error is returned at once, naming the
// field.
func Run(ctx context.Context, args Args, h call.Handler, stderr io.Writer) error {
	return errors.New("instance mode: not implemented yet")
}
