package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestChunks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{name: "number", in: "3", want: []string{"chunk 1/3", "chunk 2/3", "chunk 3/3"}},
		{name: "number with newline", in: "2\n", want: []string{"chunk 1/2", "chunk 2/2"}},
		{name: "words", in: "hello streaming world", want: []string{"hello", "streaming", "world"}},
		{name: "zero is a word", in: "0", want: []string{"0"}},
		{name: "too many is a word", in: "10001", want: []string{"10001"}},
		{name: "empty", in: "", want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, c := range chunks([]byte(tc.in)) {
				got = append(got, string(c))
			}
			assert.Equal(t, tc.want, got)
		})
	}
}
