// Package oneshot runs a function once, for a quick check from a shell: one input from stdin,
// every output on stdout.
package oneshot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
)

// MaxInput bounds the input read from stdin.
const MaxInput = 64 << 20

// Options are the one-shot command-line settings.
type Options struct {
	Name       string     // the function's name (the binary's)
	UserConfig string     // userConfig as a JSON object; "" for none
	Key        string     // the input message key
	Properties Properties // the input message properties
}

// Properties is a repeatable name=value flag.
type Properties map[string]string

// String implements flag.Value.
func (p *Properties) String() string {
	if p == nil || *p == nil {
		return ""
	}
	b, _ := json.Marshal(*p) // a map[string]string always marshals
	return string(b)
}

// Set implements flag.Value.
func (p *Properties) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("want name=value, got %q", v)
	}
	if *p == nil {
		*p = Properties{}
	}
	(*p)[name] = value
	return nil
}

// Run reads one input from stdin, calls h once and writes every output to stdout, each ended by
// a newline unless it already ends with one. A function error is returned.
func Run(ctx context.Context, opts Options, h call.Handler, stdin io.Reader, stdout, stderr io.Writer) error {
	userConfig := map[string]any{}
	if opts.UserConfig != "" {
		if err := json.Unmarshal([]byte(opts.UserConfig), &userConfig); err != nil {
			return fmt.Errorf("-user-config: want a JSON object: %w", err)
		}
	}
	in, err := io.ReadAll(io.LimitReader(stdin, MaxInput+1))
	if err != nil {
		return fmt.Errorf("reading the input from stdin: %w", err)
	}
	if len(in) > MaxInput {
		return fmt.Errorf("the input on stdin is larger than %d bytes", MaxInput)
	}
	now := time.Now()
	e := &env{
		info: call.Info{
			Tenant: "public", Namespace: "default", Name: opts.Name,
			InputTopics: []string{"stdin"}, OutputTopic: "stdout",
			UserConfig: userConfig,
		},
		logger: slog.New(slog.NewTextHandler(stderr, nil)).With("function", opts.Name),
	}
	w := &writer{w: stdout}
	inv := &call.Invocation{
		Message: &call.Message{
			TopicName: "stdin", Data: in, MsgKey: opts.Key, Props: opts.Properties,
			Published: now, Event: now,
		},
		Emit: func(ctx context.Context, out call.Output) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return w.write(out.Payload)
		},
	}
	out, err := h(ctx, e, inv)
	if err != nil {
		return fmt.Errorf("function failed: %w", err)
	}
	if out != nil {
		return w.write(out)
	}
	return nil
}

type writer struct{ w io.Writer }

func (w *writer) write(p []byte) error {
	if _, err := w.w.Write(p); err != nil {
		return fmt.Errorf("writing the output: %w", err)
	}
	if !bytes.HasSuffix(p, []byte("\n")) {
		if _, err := io.WriteString(w.w, "\n"); err != nil {
			return fmt.Errorf("writing the output: %w", err)
		}
	}
	return nil
}

var errNoPulsar = errors.New("NewOutputMessage needs Pulsar, which a one-shot run does not have; run the function with 'fnhost dev' or deploy it")

type env struct {
	info   call.Info
	logger *slog.Logger
}

func (e *env) Info() *call.Info                         { return &e.info }
func (e *env) Producer(string) (pulsar.Producer, error) { return nil, errNoPulsar }
func (e *env) Logger() *slog.Logger                     { return e.logger }
func (e *env) RecordMetric(name string, value float64) {
	e.logger.Debug("metric", "metric", name, "value", value)
}
