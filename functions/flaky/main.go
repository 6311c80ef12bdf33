// Command flaky is an example function that fails on purpose, to exercise retries and
// dead-lettering: an input containing the marker (default "fail") is a user error every time
// it is processed; any other input is returned unchanged.
//
// userConfig:
//
//	marker  the text that makes an input fail (default "fail")
package main

import (
	"bytes"
	"context"
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
	return in, nil
}

func main() { pf.Start(handle) }
