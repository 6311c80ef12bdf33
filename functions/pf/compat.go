package pf

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
	"github.com/fnhost/fnhost/functions/pf/internal/instance"
)

// NewFuncContext returns a FunctionContext built from the instance configuration on the
// command line (-instance-conf or -instance-conf-path), as upstream's does, for use outside a
// function call (for example in main, before Start). Outside instance mode, or when the
// configuration cannot be read, its accessors return zero values and an empty user config. It
// has no current record, and it cannot create producers or emit outputs.
func NewFuncContext() *FunctionContext { return newFuncContext(os.Args[1:]) }

func newFuncContext(argv []string) *FunctionContext {
	info := call.Info{UserConfig: map[string]any{}}
	if args, ok := instanceArgs(argv); ok {
		if cfg, err := instance.ParseArgs(args); err == nil {
			info = cfg.Info
		}
	}
	return &FunctionContext{
		env: staticEnv{info: &info},
		inv: &call.Invocation{
			Message: &call.Message{},
			Emit: func(context.Context, call.Output) error {
				return errors.New("pf: Emit needs a function invocation; NewFuncContext has none")
			},
		},
	}
}

// GetUserConfMap returns the user config of the instance configuration on the command line;
// see NewFuncContext.
func GetUserConfMap() map[string]any { return NewFuncContext().GetUserConfMap() }

// GetUserConfValue returns one user config value of the instance configuration on the command
// line, nil when absent; see NewFuncContext.
func GetUserConfValue(key string) any { return NewFuncContext().GetUserConfValue(key) }

// instanceArgs finds -instance-conf / -instance-conf-path (with one or two dashes, with the
// value as the next argument or after '=') in args.
func instanceArgs(args []string) (instance.Args, bool) {
	var a instance.Args
	found := false
	for i := 0; i < len(args); i++ {
		name, value, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if !strings.HasPrefix(args[i], "-") || (name != "instance-conf" && name != "instance-conf-path") {
			continue
		}
		if !hasValue && i+1 < len(args) {
			i++
			value = args[i]
		}
		if name == "instance-conf" {
			a.ConfJSON = value
		} else {
			a.ConfPath = value
		}
		found = true
	}
	return a, found
}

// staticEnv is the Env of a FunctionContext made outside an invocation.
type staticEnv struct{ info *call.Info }

func (e staticEnv) Info() *call.Info { return e.info }
func (e staticEnv) Producer(topic string) (pulsar.Producer, error) {
	return nil, errors.New("pf: NewOutputMessage needs a running function; NewFuncContext cannot create producers")
}
func (e staticEnv) RecordMetric(string, float64) {}
func (e staticEnv) Logger() *slog.Logger         { return slog.Default() }
