package main

import (
	"context"
	"testing"
)

func TestHandle(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "hi", "multi\nline\n", "\x00\xff binary"} {
		out, err := handle(context.Background(), []byte(in))
		if err != nil || string(out) != in {
			t.Errorf("handle(%q) = %q, %v; want the input back", in, out, err)
		}
	}
}
