package pluginserve

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBinarySpans(t *testing.T) {
	t.Parallel()
	const smaps = `00400000-00e38000 r-xp 00000000 fe:00 42                                 /opt/fn/echo
Rss:                8736 kB
Anonymous:             0 kB
00e38000-01a6b000 r--p 00a38000 fe:00 42                                 /opt/fn/echo
Anonymous:             0 kB
01a6b000-01a70000 r--p 0166b000 fe:00 42                                 /opt/fn/echo
Anonymous:             8 kB
01a70000-01a71000 r--p 01670000 fe:00 42                                 /opt/fn/echo
01a71000-01af5000 rw-p 01671000 fe:00 42                                 /opt/fn/echo
Anonymous:             0 kB
01af5000-03b42000 rw-p 00000000 00:00 0
Anonymous:           108 kB
7f0000000000-7f0000001000 r--p 00000000 fe:00 77                         /usr/lib/other.so
Anonymous:             0 kB
7ffd32ecf000-7ffd32ef0000 rw-p 00000000 00:00 0                          [stack]
Anonymous:            16 kB
`
	tests := []struct {
		name    string
		pc      uint64
		want    []span
		wantErr bool
	}{
		{
			// Not the relocated read-only segment (written), not one smaps says nothing of,
			// not the writable data.
			name: "code and read-only data of the binary",
			pc:   0x401000,
			want: []span{{0x400000, 0xe38000}, {0xe38000, 0x1a6b000}},
		},
		{name: "pc in an anonymous mapping", pc: 0x1af6000, wantErr: true},
		{name: "pc nowhere", pc: 0x10, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := binarySpans([]byte(smaps), tc.pc)
			if tc.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestReleaseStartup releases this test binary's start-up pages: the process goes on running
// (its code is mapped again as it runs), and exits cleanly even with the race detector, whose
// runtime is linked with cgo and has relocated read-only data.
func TestReleaseStartup(t *testing.T) {
	require.NoError(t, releaseStartup())
	got, err := binarySpans([]byte("00400000-00500000 r-xp 00000000 fe:00 1 /x\nAnonymous: 0 kB\n"), 0x400000)
	require.NoError(t, err)
	assert.Equal(t, []span{{0x400000, 0x500000}}, got)
}
