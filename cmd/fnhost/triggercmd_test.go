package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCallbackAllowFromEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  []string
		want []string
	}{
		{"unset", []string{"FNHOST_ADDR=127.0.0.1:1"}, nil},
		{"empty", []string{"FNHOST_TRIGGER_CALLBACK_ALLOW="}, nil},
		{"list", []string{"FNHOST_TRIGGER_CALLBACK_ALLOW= 10.0.0.0/8, hooks.internal,,*.corp.example "},
			[]string{"10.0.0.0/8", "hooks.internal", "*.corp.example"}},
		{"last wins", []string{"FNHOST_TRIGGER_CALLBACK_ALLOW=a.example", "FNHOST_TRIGGER_CALLBACK_ALLOW=b.example"},
			[]string{"b.example"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, callbackAllowFromEnv(tc.env))
		})
	}
}
