package trigger

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns a random invocation id: 16 bytes from crypto/rand as 26 characters of
// lower-case base32, safe in URLs, headers and Pulsar property values.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error (it crashes the program instead)
	var out [26]byte
	idEncoding.Encode(out[:], b[:])
	return string(out[:])
}

// validID reports whether id has the form newID makes; other ids are never stored.
func validID(id string) bool {
	return len(id) == 26 && strings.Trim(id, "abcdefghijklmnopqrstuvwxyz234567") == ""
}
