package codec

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/fnhost/fnhost/functions/pf/plugin/pluginpb"
)

// FrameHeader is the size of a frame's length prefix on the data socket.
const FrameHeader = 4

// AppendFrame appends m, a *pluginpb.PipelineRequests or *pluginpb.PipelineEvents, to b as one
// frame of the plugin's data socket: the size of its encoding as 4 bytes big-endian, then the
// encoding, the same bytes the gRPC stream carries.
func AppendFrame(b []byte, m any) ([]byte, error) {
	n, fill, ok := handEncoding(m)
	if !ok {
		return b, fmt.Errorf("codec: no frame encoding for %T", m)
	}
	if uint64(n) > MaxFrame {
		return b, fmt.Errorf("codec: a frame of %d bytes exceeds the limit of %d", n, MaxFrame)
	}
	start := len(b)
	b = binary.BigEndian.AppendUint32(slices.Grow(b, FrameHeader+n), uint32(n))
	b, err := fill(b)
	if err != nil {
		return b[:start], err
	}
	return b, nil
}

// MaxFrame bounds the body of one frame, as the gRPC transport bounds a message: frames are
// split at 1 MiB of payload, but a single larger payload goes alone.
const MaxFrame = math.MaxInt32

// FrameSize returns the size of the body a frame header announces.
func FrameSize(header []byte) uint32 { return binary.BigEndian.Uint32(header) }

// DecodeFrame decodes a frame's body into m, a *pluginpb.PipelineRequests or
// *pluginpb.PipelineEvents, which it resets first. m keeps no reference to body.
func DecodeFrame(body []byte, m any) error {
	switch m := m.(type) {
	case *pluginpb.PipelineRequests:
		m.Reset()
		return decodeRequests(body, m)
	case *pluginpb.PipelineEvents:
		m.Reset()
		return decodeEvents(body, m)
	}
	return fmt.Errorf("codec: no frame decoding for %T", m)
}
