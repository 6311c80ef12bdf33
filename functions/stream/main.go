// Command stream is an example streaming function: it emits several outputs for one input.
// An input that is a whole number n (1 ≤ n ≤ 10000) yields n chunks "chunk i/n"; any other
// input yields one output per word.
package main

import (
	"bytes"
	"context"
	"fmt"
	"strconv"

	"github.com/fnhost/fnhost/functions/pf"
)

// MaxChunks bounds the outputs of one input.
const MaxChunks = 10000

// chunks returns the outputs for one input.
func chunks(in []byte) [][]byte {
	if n, err := strconv.Atoi(string(bytes.TrimSpace(in))); err == nil && n >= 1 && n <= MaxChunks {
		out := make([][]byte, n)
		for i := range n {
			out[i] = fmt.Appendf(nil, "chunk %d/%d", i+1, n)
		}
		return out
	}
	return bytes.Fields(in)
}

func handle(ctx context.Context, in []byte) error {
	for _, c := range chunks(in) {
		if err := pf.Emit(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

func main() { pf.Start(handle) }
