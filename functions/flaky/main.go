// Command flaky is an example function that fails on purpose, to exercise retries and
// dead-lettering: an input containing the marker (default "fail") is a user error every time
// it is processed. An input containing "once" fails on its first delivery only, after
// emitting a partial output: where inputs are retried (through Pulsar, with maxMessageRetries)
// its retry succeeds, and a caller sees that the failed attempt's output does not mix with the
// retry's; embedded `fnhost dev` does not retry, so there it fails. Any other input is returned unchanged.
//
// userConfig:
//
//	marker  the text that makes an input fail (default "fail")
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/fnhost/fnhost/functions/pf"
)

func handle(ctx context.Context, in []byte) ([]byte, error) {
	marker := "fail"
	if fc, ok := pf.FromContext(ctx); ok {
		if m, ok := fc.GetUserConfValue("marker").(string); ok && m != "" {
			marker = m
		}
	}
	if bytes.Contains(in, []byte(marker)) {
		return nil, fmt.Errorf("flaky: input contains the marker %q", marker)
	}
	if fc, ok := pf.FromContext(ctx); ok && bytes.Contains(in, []byte("once")) &&
		fc.GetCurrentRecord() != nil && fc.GetCurrentRecord().RedeliveryCount() == 0 {
		if err := fc.Emit(ctx, []byte("partial output of a failing attempt")); err != nil {
			return nil, err
		}
		return nil, errors.New("flaky: the first delivery of a \"once\" input fails")
	}
	return in, nil
}

func main() { pf.Start(handle) }
