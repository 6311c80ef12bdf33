package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

const invokeUsage = `Usage: fnhost invoke <function> [flags]

Invokes a function through a running trigger (fnhost dev or fnhost trigger) and prints its
output. <function> is a name in public/default, or tenant/namespace/name. The input is --data,
--data-file, or standard input.

  sync (default)  prints the output (several outputs: their JSON array)
  --stream        prints each output on its own line as it arrives (Server-Sent Events)
  --async         prints the invocation id and its Location, and returns at once

Flags:
`

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

type invokeOptions struct {
	url, data, dataFile, key, contentType string
	props                                 multiFlag
	stream, async                         bool
	timeout                               time.Duration
}

// invokeCmd is fnhost invoke: an HTTP client of the trigger.
func invokeCmd(ctx context.Context, args, env []string, stdin io.Reader, stdout, stderr io.Writer) error {
	o := invokeOptions{url: "http://127.0.0.1:8088", timeout: 30 * time.Second}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "FNHOST_TRIGGER_URL="); ok && v != "" {
			o.url = v
		}
	}
	fset := flag.NewFlagSet("fnhost invoke", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() {
		fmt.Fprint(fset.Output(), invokeUsage)
		fset.PrintDefaults()
	}
	fset.StringVar(&o.url, "url", o.url, "the trigger's URL (FNHOST_TRIGGER_URL)")
	fset.StringVar(&o.data, "data", "", "the input")
	fset.StringVar(&o.dataFile, "data-file", "", "read the input from this file")
	fset.StringVar(&o.key, "key", "", "the message key")
	fset.StringVar(&o.contentType, "content-type", "", "the input's media type")
	fset.Var(&o.props, "property", "a message property name=value (repeatable)")
	fset.BoolVar(&o.stream, "stream", false, "print outputs as they arrive")
	fset.BoolVar(&o.async, "async", false, "start the invocation and print its id")
	fset.DurationVar(&o.timeout, "timeout", o.timeout, "the invocation's deadline (X-Timeout)")

	// The function may come before or after the flags.
	var fn string
	for {
		if err := fset.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return errUsage
		}
		if fset.NArg() == 0 {
			break
		}
		if fn != "" {
			fmt.Fprintf(stderr, "fnhost invoke: unexpected argument %q\n", fset.Arg(0))
			return errUsage
		}
		fn, args = fset.Arg(0), fset.Args()[1:]
	}
	if fn == "" {
		fmt.Fprint(stderr, "fnhost invoke: name the function\n\n")
		fset.Usage()
		return errUsage
	}
	if o.stream && o.async {
		fmt.Fprintln(stderr, "fnhost invoke: --stream and --async exclude each other")
		return errUsage
	}
	if o.data != "" && o.dataFile != "" {
		fmt.Fprintln(stderr, "fnhost invoke: give --data or --data-file, not both")
		return errUsage
	}
	target, err := invokeURL(o.url, fn)
	if err != nil {
		fmt.Fprintln(stderr, "fnhost invoke:", err)
		return errUsage
	}
	var body []byte
	switch {
	case o.data != "":
		body = []byte(o.data)
	case o.dataFile != "":
		body, err = os.ReadFile(o.dataFile)
	default:
		body, err = io.ReadAll(stdin)
	}
	if err != nil {
		return fmt.Errorf("reading the input: %w", err)
	}

	// The HTTP wait is bounded a little beyond the invocation's deadline, so that the
	// trigger's 504 arrives rather than a client-side timeout.
	ctx, cancel := context.WithTimeout(ctx, o.timeout+10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("invoke: %w", err)
	}
	req.Header.Set("X-Timeout", o.timeout.String())
	if o.key != "" {
		req.Header.Set("X-Message-Key", o.key)
	}
	if o.contentType != "" {
		req.Header.Set("Content-Type", o.contentType)
	}
	for _, p := range o.props {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			fmt.Fprintf(stderr, "fnhost invoke: --property %q: want name=value\n", p)
			return errUsage
		}
		req.Header.Set("X-Message-Property-"+k, v)
	}
	switch {
	case o.async:
		req.Header.Set("Prefer", "respond-async")
	case o.stream:
		req.Header.Set("Accept", "text/event-stream")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("invoking %s: %w", fn, err)
	}
	defer func() { _ = resp.Body.Close() }() // a response body: closing it only releases the connection
	if resp.StatusCode >= 300 {
		return reportHTTPError(resp, stderr)
	}
	switch {
	case o.async:
		var a struct {
			ID string `json:"id"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
			return fmt.Errorf("reading the trigger's answer: %w", err)
		}
		loc := resp.Header.Get("Location")
		if u, err := url.Parse(o.url); err == nil && strings.HasPrefix(loc, "/") {
			loc = strings.TrimRight(u.String(), "/") + loc
		}
		if _, err := fmt.Fprintf(stdout, "%s\n%s\n", a.ID, loc); err != nil {
			return fmt.Errorf("writing the invocation id: %w", err)
		}
		return nil
	case o.stream:
		return readEvents(resp.Body, stdout, stderr)
	default:
		if _, err := io.Copy(stdout, resp.Body); err != nil {
			return fmt.Errorf("reading the output: %w", err)
		}
		return nil
	}
}

// invokeURL is the invoke route of fn on the trigger at base.
func invokeURL(base, fn string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--url %q: want http://host:port", base)
	}
	base = strings.TrimRight(base, "/")
	parts := strings.Split(fn, "/")
	for _, p := range parts {
		if p == "" {
			return "", fmt.Errorf("function %q: want name or tenant/namespace/name", fn)
		}
	}
	switch len(parts) {
	case 1:
		return base + "/function/" + url.PathEscape(fn), nil
	case 3:
		return base + "/v1/functions/" + url.PathEscape(parts[0]) + "/" + url.PathEscape(parts[1]) + "/" + url.PathEscape(parts[2]) + "/invoke", nil
	default:
		return "", fmt.Errorf("function %q: want name or tenant/namespace/name", fn)
	}
}

// apiErrorBody is the trigger's JSON error.
type apiErrorBody struct {
	Code         string `json:"code"`
	Message      string `json:"message"`
	InvocationID string `json:"invocation_id"`
}

func (e apiErrorBody) String() string {
	s := e.Message
	if e.Code != "" {
		s = e.Code + ": " + s
	}
	if e.InvocationID != "" {
		s += " (invocation " + e.InvocationID + ")"
	}
	return s
}

// reportHTTPError prints the trigger's error message and returns errReported.
func reportHTTPError(resp *http.Response, stderr io.Writer) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20)) // a truncated body still says the status
	var body struct {
		Error apiErrorBody `json:"error"`
	}
	if err := json.Unmarshal(b, &body); err != nil || body.Error.Message == "" {
		fmt.Fprintf(stderr, "fnhost invoke: %s: %s\n", resp.Status, strings.TrimSpace(string(b)))
	} else {
		fmt.Fprintf(stderr, "fnhost invoke: %s: %s\n", resp.Status, body.Error)
	}
	return errReported
}

// readEvents prints the outputs of an SSE stream, one a line, until its done or error event.
func readEvents(r io.Reader, stdout, stderr io.Writer) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var event string
	var data []string
	for sc.Scan() {
		line := sc.Text()
		if line != "" {
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				event = value
			case "data":
				data = append(data, value)
			}
			continue
		}
		payload := strings.Join(data, "\n")
		switch event {
		case "output":
			if _, err := fmt.Fprintln(stdout, payload); err != nil {
				return err
			}
		case "output-base64":
			b, err := base64.StdEncoding.DecodeString(payload)
			if err != nil {
				return fmt.Errorf("decoding an output: %w", err)
			}
			if _, err := stdout.Write(append(b, '\n')); err != nil {
				return err
			}
		case "done":
			return nil
		case "error":
			var e apiErrorBody
			if err := json.Unmarshal([]byte(payload), &e); err != nil {
				fmt.Fprintf(stderr, "fnhost invoke: %s\n", payload)
			} else {
				fmt.Fprintf(stderr, "fnhost invoke: %s\n", e)
			}
			return errReported
		}
		event, data = "", nil
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading the stream: %w", err)
	}
	return errors.New("the stream ended before its done event")
}
