package main

import (
	"context"
	"testing"
)

func TestHandle(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"hi", "HI"}, {"", ""}, {"grün, pulsar!", "GRÜN, PULSAR!"}, {"ALREADY", "ALREADY"},
	}
	for _, tc := range tests {
		out, err := handle(context.Background(), []byte(tc.in))
		if err != nil || string(out) != tc.want {
			t.Errorf("handle(%q) = %q, %v; want %q", tc.in, out, err, tc.want)
		}
	}
}
