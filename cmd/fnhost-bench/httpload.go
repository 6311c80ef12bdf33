package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
)

// leanHTTP is the trigger sections' load generator: HTTP/1.1 on keep-alive connections,
// written and read by the calling goroutine itself, the request bytes built once, the
// response parsed only as far as its status, Content-Length and body. On this 2-core
// machine net/http's client (three goroutines and two channel hand-offs per call) took a
// fifth of the CPU of the process hosting it: CPU the system under test then lacked, as wrk
// would not take it.
type leanHTTP struct {
	addr string
	req  []byte         // the whole request, body included
	idle chan *leanConn // connections not in use; at most cap of them are kept
}

type leanConn struct {
	c net.Conn
	r *bufio.Reader
}

// newLeanHTTP prepares POSTs of body to rawURL (http only), keeping up to keep idle
// connections.
func newLeanHTTP(rawURL string, body []byte, keep int) (*leanHTTP, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("load generator: %s: only http://host:port URLs", rawURL)
	}
	path := u.RequestURI()
	req := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n",
		path, u.Host, len(body))
	return &leanHTTP{addr: u.Host, req: append(req, body...), idle: make(chan *leanConn, keep)}, nil
}

// echo returns a call that POSTs the body and checks that it comes back with 200.
func (h *leanHTTP) echo(body []byte) call {
	return func(ctx context.Context) error {
		status, out, err := h.do(ctx)
		switch {
		case err != nil:
			return err
		case status != 200:
			return fmt.Errorf("POST %s: status %d: %.200s", h.addr, status, out)
		}
		return checkEcho(body, out)
	}
}

// do sends the request on an idle connection (or a new one) and reads the response.
func (h *leanHTTP) do(ctx context.Context) (int, []byte, error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, err // load cancels the other callers after a failure
	}
	var lc *leanConn
	select {
	case lc = <-h.idle:
	default:
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", h.addr)
		if err != nil {
			return 0, nil, err
		}
		lc = &leanConn{c: c, r: bufio.NewReaderSize(c, 4096)}
	}
	dl, _ := ctx.Deadline()  // none: the zero time clears an earlier caller's
	_ = lc.c.SetDeadline(dl) // a net.Conn's SetDeadline fails only once closed; the write says so
	status, body, keep, err := lc.roundTrip(h.req)
	if err != nil || !keep {
		lc.drop()
		return status, body, err
	}
	select {
	case h.idle <- lc:
	default:
		lc.drop()
	}
	return status, body, nil
}

// close closes the idle connections.
func (h *leanHTTP) close() {
	for {
		select {
		case lc := <-h.idle:
			lc.drop()
		default:
			return
		}
	}
}

// drop closes a connection the load generator is done with.
func (lc *leanConn) drop() {
	_ = lc.c.Close() // its responses were read, or its round trip failed and said why: nothing is lost
}

// maxLeanBody is the largest response body the load generator reads.
const maxLeanBody = 1 << 20

var errChunked = errors.New("load generator: a chunked response (want Content-Length)")

// roundTrip writes req and reads one response: its status, body, and whether the connection
// can carry another request.
func (lc *leanConn) roundTrip(req []byte) (status int, body []byte, keep bool, err error) {
	if _, err := lc.c.Write(req); err != nil {
		return 0, nil, false, fmt.Errorf("writing the request: %w", err)
	}
	line, err := lc.r.ReadSlice('\n')
	if err != nil {
		return 0, nil, false, fmt.Errorf("reading the status line: %w", err)
	}
	// "HTTP/1.1 200 OK\r\n": the code stands between spaces (or the end of the line).
	if len(line) < 13 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' ||
		(line[12] != ' ' && line[12] != '\r' && line[12] != '\n') {
		return 0, nil, false, fmt.Errorf("malformed status line %q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, false, fmt.Errorf("malformed status line %q", line)
	}
	// HTTP/1.0 closes unless told otherwise; HTTP/1.1 keeps the connection unless told.
	length, keep := -1, !bytes.HasPrefix(line, []byte("HTTP/1.0"))
	for {
		line, err := lc.r.ReadSlice('\n')
		if err != nil {
			return status, nil, false, fmt.Errorf("reading the headers: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return status, nil, false, fmt.Errorf("malformed header line %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return status, nil, false, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return status, nil, false, errChunked
		case bytes.EqualFold(name, []byte("Connection")):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				switch tok = bytes.TrimSpace(tok); {
				case bytes.EqualFold(tok, []byte("close")):
					keep = false
				case bytes.EqualFold(tok, []byte("keep-alive")):
					keep = true
				}
			}
		}
	}
	if length < 0 && (status == 204 || status == 304) {
		length = 0
	}
	switch {
	case length < 0:
		return status, nil, false, errors.New("load generator: a response without Content-Length")
	case length > maxLeanBody:
		return status, nil, false, fmt.Errorf("load generator: a %d-byte body, above %d", length, maxLeanBody)
	}
	body = make([]byte, length)
	if _, err := io.ReadFull(lc.r, body); err != nil {
		return status, nil, false, fmt.Errorf("reading the body: %w", err)
	}
	return status, body, keep, nil
}
