package main

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHandle(t *testing.T) {
	t.Parallel()
	out, err := handle(context.Background(), []byte("The quick fox; the lazy dog, THE end."))
	require.NoError(t, err)
	var c Counts
	require.NoError(t, json.Unmarshal(out, &c))
	assert.Equal(t, 8, c.Words)
	assert.Equal(t, 3, c.Counts["the"])
	assert.Equal(t, 1, c.Counts["fox"])

	out, err = handle(context.Background(), nil)
	require.NoError(t, err)
	assert.JSONEq(t, `{"words":0,"counts":{}}`, string(out))
}
