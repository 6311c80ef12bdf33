// Command testfn is a function for the pool's tests. Its output is "<version>:<input>";
// version is set at build time. Inputs starting with a command change its behaviour:
//
//	exit        the process exits at once (a crash)
//	sleep:<d>   waits d (a Go duration) or until the invocation is cancelled
package main

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/fnhost/fnhost/functions/pf"
)

var version = "v0"

func handle(ctx context.Context, in []byte) ([]byte, error) {
	s := string(in)
	switch {
	case s == "exit":
		os.Exit(3)
	case strings.HasPrefix(s, "sleep:"):
		d, err := time.ParseDuration(strings.TrimPrefix(s, "sleep:"))
		if err != nil {
			return nil, err
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return []byte(version + ":" + s), nil
}

func main() { pf.Start(handle) }
