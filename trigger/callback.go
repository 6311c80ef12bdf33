package trigger

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/fnhost/fnhost/internal/sleep"
)

// Sign returns the X-Fnhost-Signature value of a callback body: "sha256=" and the hex
// HMAC-SHA256 of body with secret. A receiver recomputes it over the raw body and compares
// with hmac.Equal.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// deliver POSTs the record to url, retrying transport errors, 408, 429 and 5xx with
// exponential backoff and jitter (honouring Retry-After up to CallbackMaxBackoff), at most
// CallbackAttempts times, each attempt bounded by CallbackTimeout.
func (s *Server) deliver(ctx context.Context, rec Invocation, url string) error {
	body, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encoding invocation %s for its callback: %w", rec.ID, err)
	}
	backoff := s.cfg.CallbackBackoff
	for attempt := 1; ; attempt++ {
		retry, after, err := s.post(ctx, url, rec.ID, body, attempt)
		if err == nil {
			return nil
		}
		if !retry || attempt >= s.cfg.CallbackAttempts {
			return fmt.Errorf("callback of invocation %s, attempt %d of %d: %w", rec.ID, attempt, s.cfg.CallbackAttempts, err)
		}
		// Equal jitter: half the backoff plus a random part of the other half.
		wait := backoff/2 + rand.N(backoff/2+1)
		wait = min(max(wait, after), s.cfg.CallbackMaxBackoff)
		backoff = min(2*backoff, s.cfg.CallbackMaxBackoff)
		if !sleep.For(ctx, wait) {
			return fmt.Errorf("callback of invocation %s after %d attempts: %w", rec.ID, attempt, ctx.Err())
		}
	}
}

// post makes one attempt. retry says whether another attempt may succeed; after is the
// receiver's Retry-After, if any.
func (s *Server) post(ctx context.Context, url, id string, body []byte, attempt int) (retry bool, after time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallbackTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false, 0, fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(headerInvocationID, id)
	req.Header.Set(headerAttempt, strconv.Itoa(attempt))
	if len(s.cfg.CallbackSecret) > 0 {
		req.Header.Set(headerSignature, Sign(s.cfg.CallbackSecret, body))
	}
	req, endSpan := s.traceCallback(req, id, attempt)
	resp, err := s.callback.client.Do(req)
	if err != nil {
		endSpan(0, err)
		return true, 0, fmt.Errorf("posting: %w", err)
	}
	endSpan(resp.StatusCode, nil)
	// Drain a little so the connection can be reused; the body itself is not used.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096)) // best effort, see above
	_ = resp.Body.Close()                                       // the status decides; a close error changes nothing
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, 0, nil
	}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		after = time.Duration(secs) * time.Second
	}
	retry = resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests ||
		resp.StatusCode >= 500
	return retry, after, fmt.Errorf("receiver answered %s", resp.Status)
}
