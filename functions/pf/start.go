package pf

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/fnhost/fnhost/functions/pf/internal/instance"
	"github.com/fnhost/fnhost/functions/pf/internal/oneshot"
	"github.com/fnhost/fnhost/functions/pf/internal/pluginserve"
	"github.com/fnhost/fnhost/functions/pf/plugin"
)

// Start runs handler as a function and does not return. The launch mode is chosen from how the
// process was started:
//
//  1. with -instance-conf <json> or -instance-conf-path <yaml>: a Pulsar Functions Go instance,
//     as the functions worker launches it;
//  2. by fnhost's host runtime (go-plugin handshake in the environment): a plugin;
//  3. otherwise: a one-shot run, one input read from stdin, the output written to stdout.
//
// An invalid handler or configuration ends the process with exit status 2 and a message naming
// what is wrong; a failure while running ends it with status 1; SIGTERM or SIGINT ends it
// cleanly with status 0. A handler error or panic is never fatal: it fails one input.
func Start(handler any) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, handler, os.Args[0], os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		var ue usageError
		if errors.As(err, &ue) && !ue.printed {
			fmt.Fprintf(os.Stderr, "%s: %v\n", filepath.Base(os.Args[0]), err)
		}
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "%s: %v\n", filepath.Base(os.Args[0]), err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

// usageError is a command line or handler pf cannot run with; printed is true when the flag
// package has already told the user.
type usageError struct {
	err     error
	printed bool
}

func (e usageError) Error() string   { return e.err.Error() }
func (e usageError) Unwrap() []error { return []error{e.err, errUsage} }

const usageText = `%[1]s is a Go function built with fnhost's SDK. It runs in one of three modes:

  Pulsar Functions instance (as the functions worker starts it):
      %[1]s -instance-conf '<json>'
      %[1]s -instance-conf-path conf.yaml
  fnhost plugin (as 'fnhost runtime' or 'fnhost dev' starts it): automatic
  one-shot (for quick checks): one input from stdin, the output on stdout
      echo hello | %[1]s [-user-config '{"key":"value"}'] [-key K] [-property name=value ...]

Flags:
`

func run(ctx context.Context, handler any, argv0 string, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	h, err := wrap(handler)
	if err != nil {
		return usageError{err: err}
	}
	name := filepath.Base(argv0)
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	confJSON := fs.String("instance-conf", "", "Pulsar Functions instance configuration (JSON), as the worker passes it")
	confPath := fs.String("instance-conf-path", "", "Pulsar Functions instance configuration file (YAML)")
	var shot oneshot.Options
	fs.StringVar(&shot.UserConfig, "user-config", "", "one-shot: userConfig as a JSON object")
	fs.StringVar(&shot.Key, "key", "", "one-shot: the input message key")
	fs.Var(&shot.Properties, "property", "one-shot: an input property `name=value` (repeatable)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), usageText, name)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err: err, printed: true}
	}
	if fs.NArg() > 0 {
		return usageError{err: fmt.Errorf("unexpected argument %q (see -h)", fs.Arg(0))}
	}

	switch {
	case *confJSON != "" || *confPath != "":
		err := instance.Run(ctx, instance.Args{ConfJSON: *confJSON, ConfPath: *confPath}, h, stderr)
		if errors.Is(err, instance.ErrConfig) {
			return usageError{err: err}
		}
		return err
	case os.Getenv(plugin.Handshake.MagicCookieKey) == plugin.Handshake.MagicCookieValue:
		return pluginserve.Serve(ctx, h, stderr)
	default:
		shot.Name = name
		return oneshot.Run(ctx, shot, h, stdin, stdout, stderr)
	}
}
