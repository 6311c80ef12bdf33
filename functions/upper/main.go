// Command upper is an example function: it returns its input in upper case.
package main

import (
	"bytes"
	"context"

	"github.com/fnhost/fnhost/functions/pf"
)

func handle(_ context.Context, in []byte) ([]byte, error) {
	return bytes.ToUpper(in), nil
}

func main() { pf.Start(handle) }
