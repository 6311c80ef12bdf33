package invocation

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseRequest(t *testing.T) {
	t.Parallel()
	r, err := ParseRequest(map[string]string{ID: "i", ReplyTo: "t", Deadline: "1700000000000"}, 2)
	require.NoError(t, err)
	assert.Equal(t, Request{ID: "i", ReplyTo: "t", Deadline: time.UnixMilli(1_700_000_000_000), Attempt: 2}, r)
	assert.True(t, r.Correlated())

	r, err = ParseRequest(map[string]string{ID: "i", Deadline: "soon"}, 0)
	assert.ErrorContains(t, err, "property fnhost-deadline: want Unix milliseconds")
	assert.Equal(t, "i", r.ID, "the rest of the request survives a bad deadline")

	r, err = ParseRequest(nil, 0)
	require.NoError(t, err)
	assert.False(t, r.Correlated())
}

func TestRepliesNumberAndMark(t *testing.T) {
	t.Parallel()
	rs := NewReplies(Request{ID: "inv", ReplyTo: "r"})
	first := map[string]string{"a": "1"}
	assert.Equal(t, 0, rs.Output(first, false, ""))
	assert.Equal(t, map[string]string{"a": "1", ID: "inv", Seq: "0"}, first)
	last := map[string]string{}
	assert.Equal(t, 1, rs.Output(last, true, ""))
	assert.Equal(t, map[string]string{ID: "inv", Seq: "1", Final: "true"}, last)

	rs = NewReplies(Request{ReplyTo: "r", Attempt: 3})
	end := map[string]string{}
	assert.Equal(t, 0, rs.End(end, "boom"))
	assert.Equal(t, map[string]string{Seq: "0", Attempt: "3", Final: "true", End: "true", Error: "boom"}, end)
	assert.Equal(t, 1, rs.Next())
}

func TestParseReply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		props map[string]string
		want  Reply
		ok    bool
	}{
		{"output", map[string]string{ID: "i", Seq: "2"}, Reply{ID: "i", Seq: 2, Output: true}, true},
		{"final output of a retry", map[string]string{ID: "i", Seq: "0", Final: "true", Attempt: "1"},
			Reply{ID: "i", Seq: 0, Attempt: 1, Final: true, Output: true}, true},
		{"end marker", map[string]string{ID: "i", Seq: "1", Final: "true", End: "true"},
			Reply{ID: "i", Seq: 1, Final: true}, true},
		{"error", map[string]string{ID: "i", Seq: "0", Final: "true", Error: "boom"},
			Reply{ID: "i", Final: true, Error: "boom"}, true},
		{"no id", map[string]string{Seq: "0"}, Reply{}, false},
		{"no seq", map[string]string{ID: "i"}, Reply{}, false},
		{"negative seq", map[string]string{ID: "i", Seq: "-1"}, Reply{}, false},
		{"bad attempt", map[string]string{ID: "i", Seq: "0", Attempt: "x"}, Reply{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := ParseReply(tc.props)
			assert.Equal(t, tc.ok, ok)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestRepliesRoundTrip(t *testing.T) {
	t.Parallel()
	rs := NewReplies(Request{ID: "inv", ReplyTo: "r", Attempt: 1})
	props := map[string]string{}
	rs.Output(props, true, "")
	got, ok := ParseReply(props)
	require.True(t, ok)
	assert.Equal(t, Reply{ID: "inv", Seq: 0, Attempt: 1, Final: true, Output: true}, got)
}
