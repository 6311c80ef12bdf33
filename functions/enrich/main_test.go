package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHandle(t *testing.T) {
	t.Parallel()
	out, err := handle(context.Background(), []byte(`{"order":42,"items":["a"]}`))
	require.NoError(t, err)
	assert.JSONEq(t, `{"order":42,"items":["a"],"_meta":{"key":"","topic":"","source":"fnhost"}}`, string(out))

	for _, bad := range []string{``, `[1,2]`, `"s"`, `{`, `null`} {
		_, err := handle(context.Background(), []byte(bad))
		assert.ErrorIs(t, err, errNotObject, "input %q", bad)
	}
}
