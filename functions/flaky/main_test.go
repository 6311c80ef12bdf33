package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestHandle(t *testing.T) {
	t.Parallel()
	out, err := handle(context.Background(), []byte("fine"))
	assert.NoError(t, err)
	assert.Equal(t, "fine", string(out))

	_, err = handle(context.Background(), []byte("please fail now"))
	assert.ErrorContains(t, err, `marker "fail"`)
}
