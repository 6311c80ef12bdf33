// Command echo is fnhost's canonical example function: it returns its input unchanged.
package main

import (
	"context"

	"github.com/fnhost/fnhost/functions/pf"
)

func handle(_ context.Context, in []byte) ([]byte, error) {
	return in, nil
}

func main() { pf.Start(handle) }
