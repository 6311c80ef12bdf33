package datasock

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/fnhost/fnhost/functions/pf/plugin/pluginpb"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// acceptAsync accepts ln's connection in a goroutine and delivers it.
func acceptAsync(t *testing.T, ln *Listener) <-chan *Conn {
	accepted := make(chan *Conn, 1)
	go func() {
		c, err := ln.Accept(testCtx(t))
		assert.NoError(t, err)
		accepted <- c
	}()
	return accepted
}

// pair returns the plugin's and the host's ends of one data socket.
func pair(t *testing.T) (plugin, host *Conn) {
	t.Helper()
	ln, err := Listen()
	require.NoError(t, err)
	accepted := acceptAsync(t, ln)
	host, err = Dial(testCtx(t), ln.Addr(), ln.Token())
	require.NoError(t, err)
	plugin = <-accepted
	require.NotNil(t, plugin)
	// A test may have closed either end already, as part of what it checks.
	t.Cleanup(func() { _ = plugin.Close(); _ = host.Close() })
	return plugin, host
}

func TestFramesBothWays(t *testing.T) {
	t.Parallel()
	plugin, host := pair(t)
	reqs := &pluginpb.PipelineRequests{Requests: []*pluginpb.PipelineRequest{
		{Id: 1, Request: &pluginpb.PipelineRequest_Invoke{Invoke: &pluginpb.InvokeRequest{
			Payload: []byte("hello"), Key: "k", Properties: map[string]string{"a": "b"}, DeadlineUnixNano: 42,
		}}},
		{Id: 7, Request: &pluginpb.PipelineRequest_Cancel{Cancel: &pluginpb.Cancel{}}},
	}}
	big := make([]byte, 3*bufSize+5) // longer than the read buffer
	evs := &pluginpb.PipelineEvents{Events: []*pluginpb.PipelineEvent{
		{Id: 1, Event: &pluginpb.Event{Event: &pluginpb.Event_Output{Output: &pluginpb.Output{Payload: big}}}},
		{Id: 1, Event: &pluginpb.Event{Event: &pluginpb.Event_Done{Done: &pluginpb.Done{Kind: pluginpb.ErrorKind_ERROR_KIND_USER, Error: "boom"}}}},
	}}
	for range 3 { // the buffers are reused between frames
		require.NoError(t, host.Write(reqs))
		var gotReqs pluginpb.PipelineRequests
		require.NoError(t, plugin.Read(&gotReqs))
		assert.True(t, proto.Equal(reqs, &gotReqs), "requests: %v", &gotReqs)

		require.NoError(t, plugin.Write(evs))
		var gotEvs pluginpb.PipelineEvents
		require.NoError(t, host.Read(&gotEvs))
		assert.True(t, proto.Equal(evs, &gotEvs))
	}
	require.NoError(t, plugin.Close())
	require.ErrorIs(t, host.Read(&pluginpb.PipelineEvents{}), io.EOF, "closed between frames")
}

func TestWrongTokenRefused(t *testing.T) {
	t.Parallel()
	ln, err := Listen()
	require.NoError(t, err)
	accepted := acceptAsync(t, ln)

	// Another local process that found the name: it is dropped without a byte read from
	// the pipeline.
	bad, err := net.Dial("unix", ln.Addr())
	require.NoError(t, err)
	_, err = bad.Write(make([]byte, TokenSize))
	require.NoError(t, err)
	_ = bad.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = bad.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF, "a connection with the wrong token is closed")

	// The host still gets in, and is the only one.
	host, err := Dial(testCtx(t), ln.Addr(), ln.Token())
	require.NoError(t, err)
	defer func() { assert.NoError(t, host.Close()) }()
	plugin := <-accepted
	require.NotNil(t, plugin)
	defer func() { assert.NoError(t, plugin.Close()) }()
	_, err = Dial(testCtx(t), ln.Addr(), ln.Token())
	require.Error(t, err, "the listener closes after the host's connection")
}

func TestAcceptEndsWithCtx(t *testing.T) {
	t.Parallel()
	ln, err := Listen()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = ln.Accept(ctx)
	require.ErrorIs(t, err, context.Canceled)
}

func TestCorruptLengthRefused(t *testing.T) {
	t.Parallel()
	ln, err := Listen()
	require.NoError(t, err)
	accepted := acceptAsync(t, ln)
	raw, err := net.Dial("unix", ln.Addr())
	require.NoError(t, err)
	defer func() { assert.NoError(t, raw.Close()) }()
	_, err = raw.Write(ln.Token())
	require.NoError(t, err)
	plugin := <-accepted
	defer func() { assert.NoError(t, plugin.Close()) }()
	var h [4]byte
	binary.BigEndian.PutUint32(h[:], 1<<31)
	_, err = raw.Write(h[:])
	require.NoError(t, err)
	err = plugin.Read(&pluginpb.PipelineRequests{})
	require.ErrorContains(t, err, "more than the limit")

	_, err = Dial(testCtx(t), "@fnhost-plugin-none", make([]byte, 3))
	require.ErrorContains(t, err, "token has 3 bytes")
}

// TestOtherProcessRefused: a process that is neither the plugin's parent nor the plugin is
// refused even with the right token, and the host still gets in afterwards.
func TestOtherProcessRefused(t *testing.T) {
	t.Parallel()
	ln, err := Listen()
	require.NoError(t, err)
	accepted := acceptAsync(t, ln)
	// A child of this process plays the stranger: this process is its parent, not the
	// listener's.
	cmd := exec.CommandContext(testCtx(t), os.Args[0], "-test.run=^TestHelperStranger$", "-test.count=1")
	cmd.Env = append(os.Environ(), "FNHOST_DATASOCK_STRANGER="+ln.Addr()+" "+hex.EncodeToString(ln.Token()))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "refused:", "the stranger's dial")

	host, err := Dial(testCtx(t), ln.Addr(), ln.Token())
	require.NoError(t, err)
	defer func() { assert.NoError(t, host.Close()) }()
	plugin := <-accepted
	require.NotNil(t, plugin)
	assert.NoError(t, plugin.Close())
}

// TestHelperStranger is TestOtherProcessRefused's child: it dials with the right token and
// reports what happened.
func TestHelperStranger(t *testing.T) {
	v := os.Getenv("FNHOST_DATASOCK_STRANGER")
	if v == "" {
		t.Skip("run by TestOtherProcessRefused")
	}
	var addr, tok string
	for i := len(v) - 1; i >= 0; i-- {
		if v[i] == ' ' {
			addr, tok = v[:i], v[i+1:]
			break
		}
	}
	token, err := hex.DecodeString(tok)
	require.NoError(t, err)
	c, err := Dial(testCtx(t), addr, token)
	if err != nil {
		t.Logf("refused: %v", err)
		_, err = os.Stdout.WriteString("refused: " + err.Error() + "\n")
		require.NoError(t, err, "the parent reads the verdict from stdout")
		return
	}
	_ = c.Close() // the test fails below, for the reason that matters
	t.Fatal("a stranger was let in")
}

// TestDialNeedsAcknowledgement: a listener that takes the token but never answers is not a
// data socket the host commits to.
func TestDialNeedsAcknowledgement(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("unix", "@fnhost-test-noack-"+hex.EncodeToString([]byte(t.Name()))[:16])
	require.NoError(t, err)
	defer func() { assert.NoError(t, ln.Close()) }()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = io.ReadFull(c, make([]byte, TokenSize))
		_ = c.Close() // the peer that never acknowledges: what Dial sees is the check
	}()
	_, err = Dial(testCtx(t), ln.Addr().String(), make([]byte, TokenSize))
	require.ErrorContains(t, err, "did not acknowledge")
}

// TestWriteBehind: frames queued behind the writer arrive whole and in order, many per write,
// and a Write after Close fails.
func TestWriteBehind(t *testing.T) {
	t.Parallel()
	plugin, host := pair(t)
	host.WriteBehind()
	const n = 2000
	go func() {
		for i := range n {
			m := &pluginpb.PipelineRequests{Requests: []*pluginpb.PipelineRequest{{Id: uint64(i)}}}
			if !assert.NoError(t, host.Write(m)) {
				return
			}
		}
	}()
	for i := range n {
		var got pluginpb.PipelineRequests
		require.NoError(t, plugin.Read(&got))
		require.Len(t, got.GetRequests(), 1)
		require.Equal(t, uint64(i), got.GetRequests()[0].GetId())
	}
	require.NoError(t, host.Close())
	require.Error(t, host.Write(&pluginpb.PipelineRequests{}), "after Close")
}
