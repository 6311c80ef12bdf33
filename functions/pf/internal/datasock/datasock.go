// Package datasock is the plugin protocol's direct data path: one Unix stream connection
// between the host and a plugin process that carries the Pipeline frames without gRPC.
//
// The go-plugin gRPC connection stays for everything else (Configure, Health, Drain) and is
// how the host learns the socket's address and secret. Over gRPC every frame of the pipeline
// passed through HTTP/2 framing, flow control and two goroutine hand-offs per side (gRPC's
// writer and reader loops); here the pipeline's own sender writes and its own receiver reads.
// The bytes of a frame are those the gRPC stream carries (package codec), behind a 4-byte
// length.
//
// The socket lives in Linux's abstract namespace: nothing on disk to clean up when a plugin is
// killed. Any local process could connect to it, so the plugin accepts a connection only from
// its parent (the host) or itself, as the kernel reports the peer, running as the same user, and
// only when it begins with the secret token; it acknowledges the token with one byte, accepts
// that one connection and closes the listener. On other systems Listen reports ErrUnsupported
// and the host keeps gRPC.
package datasock

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/fnhost/fnhost/functions/pf/internal/codec"
	"github.com/fnhost/fnhost/functions/pf/plugin/pluginpb"
)

const (
	// TokenSize is the size of the secret a connection begins with.
	TokenSize = 32
	// handshakeTimeout bounds how long the plugin waits for a connection's token, and the
	// host for the connection, the token's write and the acknowledgement.
	handshakeTimeout = 10 * time.Second
	// acceptTimeout bounds how long the plugin keeps the listener open for the host, which
	// dials as soon as Configure has returned; a host that chose gRPC never comes.
	acceptTimeout = time.Minute
	// ack is the plugin's answer to a good token.
	ack = 1
	// bufSize is the size of a connection's read buffer.
	bufSize = 64 << 10
	// maxKeep bounds the encode and read buffers a connection keeps between frames: a rare
	// large frame does not pin its buffer for the connection's life.
	maxKeep = 1 << 20
)

// ErrUnsupported: this system has no abstract Unix sockets; use the gRPC pipeline.
var ErrUnsupported = errors.New("datasock: no abstract Unix sockets on " + runtime.GOOS)

// Listener is the plugin's end before the host has connected.
type Listener struct {
	ln    net.Listener
	token []byte
}

// Listen opens a listener on a fresh abstract address and makes its token. Addr and Token
// are what the plugin tells the host.
func Listen() (*Listener, error) {
	if runtime.GOOS != "linux" {
		return nil, ErrUnsupported
	}
	var raw [16 + TokenSize]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, fmt.Errorf("datasock: %w", err)
	}
	ln, err := net.Listen("unix", "@fnhost-plugin-"+hex.EncodeToString(raw[:16]))
	if err != nil {
		return nil, fmt.Errorf("datasock: %w", err)
	}
	return &Listener{ln: ln, token: raw[16:]}, nil
}

// Addr is the address to dial, "@name".
func (l *Listener) Addr() string { return l.ln.Addr().String() }

// Token is the secret the connection must begin with.
func (l *Listener) Token() []byte { return l.token }

// Close closes the listener; Accept then returns an error.
func (l *Listener) Close() error { return l.ln.Close() }

// Accept waits for the host's connection and closes the listener. Connections from another
// process than this one's parent or itself, or from another user, are closed at once; those
// that do not begin with the token within the handshake bound are dropped. It returns when a
// connection was accepted, ctx ends, the listener is closed, or the host has not come within
// acceptTimeout.
func (l *Listener) Accept(ctx context.Context) (*Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, acceptTimeout)
	defer cancel()
	// Closing the listener is how Accept stops waiting, and it accepts one connection only;
	// a Close error (already closed) changes neither.
	stop := context.AfterFunc(ctx, func() { _ = l.ln.Close() })
	defer stop()
	defer func() { _ = l.ln.Close() }()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("datasock: accepting: %w", err)
		}
		if !trustedPeer(c) {
			_ = c.Close() // a stranger's connection, refused: nothing to report
			continue
		}
		var got [TokenSize]byte
		_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
		_, err = io.ReadFull(c, got[:])
		if err == nil && subtle.ConstantTimeCompare(got[:], l.token) == 1 {
			_, err = c.Write([]byte{ack})
			if err == nil {
				_ = c.SetDeadline(time.Time{})
				return newConn(c), nil
			}
		}
		_ = c.Close() // a failed handshake: the connection is dropped and Accept waits for the next
	}
}

// Dial connects to a plugin's data socket at addr and sends token.
func Dial(ctx context.Context, addr string, token []byte) (*Conn, error) {
	if runtime.GOOS != "linux" {
		return nil, ErrUnsupported
	}
	if len(token) != TokenSize {
		return nil, fmt.Errorf("datasock: the plugin's token has %d bytes, want %d", len(token), TokenSize)
	}
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", addr)
	if err != nil {
		return nil, fmt.Errorf("datasock: %w", err)
	}
	dl, _ := ctx.Deadline()
	_ = c.SetDeadline(dl)
	if _, err := c.Write(token); err != nil {
		_ = c.Close() // the write's error is the one to report
		return nil, fmt.Errorf("datasock: sending the token: %w", err)
	}
	// Until the plugin acknowledges, nothing is committed: the host can still use gRPC.
	var got [1]byte
	if _, err := io.ReadFull(c, got[:]); err != nil || got[0] != ack {
		_ = c.Close() // the handshake's failure is the one to report
		if err == nil {
			err = fmt.Errorf("unexpected byte %#x", got[0])
		}
		return nil, fmt.Errorf("datasock: the plugin did not acknowledge the token: %w", err)
	}
	_ = c.SetDeadline(time.Time{})
	return newConn(c), nil
}

// Conn carries frames one way in each direction. One goroutine may write while another
// reads; writes are serialised, reads must come from one goroutine.
type Conn struct {
	c net.Conn
	r *bufio.Reader

	rbuf []byte // the body of the frame being decoded

	wmu  sync.Mutex
	wbuf []byte
	aw   *asyncWriter // set by WriteBehind
}

func newConn(c net.Conn) *Conn {
	return &Conn{c: c, r: bufio.NewReaderSize(c, bufSize)}
}

// WriteBehind makes Write queue its frames for a goroutine of the Conn's own, which writes
// everything queued in one write: encoding the next frames overlaps writing the previous ones,
// and a busy sender's frames share system calls, as behind gRPC's writer loop. Call it once,
// before the first Write; Close ends the goroutine.
func (c *Conn) WriteBehind() {
	aw := &asyncWriter{c: c.c, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	aw.room = sync.NewCond(&aw.mu)
	c.aw = aw
	go aw.run()
}

// maxBehind bounds the bytes queued behind the writer; Write waits beyond it.
const maxBehind = 4 << 20

// asyncWriter is WriteBehind's writer.
type asyncWriter struct {
	c     net.Conn
	mu    sync.Mutex
	room  *sync.Cond // signalled when queued shrinks or err is set
	buf   []byte     // frames queued, encoded
	spare []byte
	err   error // sticky: the first failed write, or errClosed
	wake  chan struct{}
	stop  chan struct{}
	done  chan struct{}

	stopOnce sync.Once
}

var errClosed = errors.New("datasock: connection closed")

func (w *asyncWriter) write(m any) error {
	w.mu.Lock()
	for len(w.buf) >= maxBehind && w.err == nil {
		w.room.Wait()
	}
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	b, err := codec.AppendFrame(w.buf, m)
	if err != nil {
		w.mu.Unlock()
		return err
	}
	w.buf = b
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return nil
}

func (w *asyncWriter) run() {
	defer close(w.done)
	for {
		select {
		case <-w.wake:
		case <-w.stop:
			w.fail(errClosed)
			return
		}
		w.mu.Lock()
		if len(w.buf) == 0 {
			w.mu.Unlock()
			continue
		}
		// buf and spare never share an array: spare is only ever a written buffer.
		b := w.buf
		w.buf, w.spare = w.spare[:0], nil
		w.room.Broadcast()
		w.mu.Unlock()
		if _, err := w.c.Write(b); err != nil {
			w.fail(err)
			return
		}
		if cap(b) <= maxKeep {
			w.mu.Lock()
			w.spare = b[:0]
			w.mu.Unlock()
		}
	}
}

func (w *asyncWriter) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.room.Broadcast()
	w.mu.Unlock()
}

// Write sends m, a *pluginpb.PipelineRequests or *pluginpb.PipelineEvents, as one frame. After
// WriteBehind it returns once the frame is queued; a failed write shows in a later call.
func (c *Conn) Write(m any) error {
	if c.aw != nil {
		return c.aw.write(m)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b, err := codec.AppendFrame(c.wbuf[:0], m)
	if err != nil {
		return err
	}
	_, err = c.c.Write(b)
	if cap(b) <= maxKeep {
		c.wbuf = b
	} else {
		c.wbuf = nil
	}
	return err
}

// Read reads the next frame into m, a *pluginpb.PipelineRequests or *pluginpb.PipelineEvents.
// io.EOF means the peer closed the connection between frames.
func (c *Conn) Read(m any) error {
	var h [codec.FrameHeader]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		return err
	}
	size := codec.FrameSize(h[:])
	if size > codec.MaxFrame {
		return fmt.Errorf("datasock: a frame announces %d bytes, more than the limit of %d", size, uint32(codec.MaxFrame))
	}
	n := int(size)
	if cap(c.rbuf) < n {
		c.rbuf = make([]byte, n)
	}
	body := c.rbuf[:n]
	if _, err := io.ReadFull(c.r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	err := codec.DecodeFrame(body, m)
	if cap(c.rbuf) > maxKeep {
		c.rbuf = nil
	}
	if err != nil {
		return fmt.Errorf("datasock: a frame of %d bytes does not decode: %w", n, err)
	}
	return nil
}

// Close closes the connection; a Read or Write in progress returns an error.
func (c *Conn) Close() error {
	err := c.c.Close()
	if c.aw != nil {
		c.aw.stopOnce.Do(func() { close(c.aw.stop) })
		<-c.aw.done
	}
	return err
}

// ServerStream is the plugin's side of the pipeline over a Conn, shaped like the gRPC
// stream's Send, Recv and Context. Its context ends when Recv or Send fails or Close is called.
// The connection stays open for Send until Close: StopReading ends the intake while the events
// already queued can still be written.
type ServerStream struct {
	conn   *Conn
	ctx    context.Context
	cancel context.CancelFunc
}

// NewServerStream wraps conn.
func NewServerStream(conn *Conn) *ServerStream {
	ctx, cancel := context.WithCancel(context.Background())
	return &ServerStream{conn: conn, ctx: ctx, cancel: cancel}
}

// Context ends when the connection does.
func (s *ServerStream) Context() context.Context { return s.ctx }

// Send writes one frame of events.
func (s *ServerStream) Send(m *pluginpb.PipelineEvents) error {
	if err := s.conn.Write(m); err != nil {
		s.cancel()
		return err
	}
	return nil
}

// Recv reads the next frame of requests. The host never half-closes the data socket: it
// closes it when it is done with the plugin, so an end of file is an error here, and the
// invocations in flight are cancelled as they are when a gRPC stream is.
func (s *ServerStream) Recv() (*pluginpb.PipelineRequests, error) {
	m := new(pluginpb.PipelineRequests)
	if err := s.conn.Read(m); err != nil {
		s.cancel()
		if errors.Is(err, io.EOF) {
			return nil, errors.New("datasock: the data socket was closed for reading")
		}
		return nil, err
	}
	return m, nil
}

// StopReading makes Recv fail, at once or when it is next called, while Send still works: the
// pipeline then ends as for a host that left, after writing what it has queued.
func (s *ServerStream) StopReading() {
	if uc, ok := s.conn.c.(*net.UnixConn); ok && uc.CloseRead() == nil {
		return
	}
	// Without a half close the whole connection closes; Send then fails and says so.
	_ = s.conn.Close()
}

// Close ends the stream and closes its connection.
func (s *ServerStream) Close() {
	s.cancel()
	_ = s.conn.Close() // the stream is over either way; its callers have no use for the error
}
