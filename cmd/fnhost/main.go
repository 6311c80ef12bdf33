// Command fnhost is the one CLI of fnhost: it runs the local host runtime and the HTTP
// trigger, deploys and invokes functions. Subcommands arrive with their parts; today it knows
// version and help.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/gin-gonic/gin"

	"github.com/fnhost/fnhost/runtime/host"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// errUsage marks a command line that could not be understood; main exits 2 for it.
var errUsage = errors.New("usage")

// errReported marks a failure already explained on stderr; main exits 1 without repeating it.
var errReported = errors.New("reported")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	gin.SetMode(gin.ReleaseMode)
	host.SetGCPercent(os.Environ())
	err := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, errUsage):
		os.Exit(2)
	case errors.Is(err, errReported):
		os.Exit(1)
	default:
		fmt.Fprintln(os.Stderr, "fnhost:", err)
		os.Exit(1)
	}
}

const usage = `fnhost — serverless Go functions on Apache Pulsar

Usage: fnhost <command> [flags]

Commands:
  dev        run the functions and the HTTP trigger in one process (embedded by default)
  runtime    run the functions as plugin processes fed from Pulsar topics
  trigger    run the HTTP trigger alone, invoking functions through Pulsar topics
  invoke     invoke a function through a running trigger (fnhost invoke echo --data hi)
  status     show the functions of a running dev or runtime
  deploy     build and deploy functions into Pulsar Functions (admin REST API, no Java)
  validate   check function manifests (fnhost validate manifests/functions)
  new        create a function: source, test and manifest
  version    print the version
  help       print this help

Run 'fnhost <command> -h' for a command's flags.
`

func run(ctx context.Context, args, env []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "fnhost", version)
		return nil
	case "dev":
		return dev(ctx, args[1:], env, stdout, stderr)
	case "runtime":
		return runtimeCmd(ctx, args[1:], env, stdout, stderr)
	case "trigger":
		return triggerCmd(ctx, args[1:], env, stdout, stderr)
	case "invoke":
		return invokeCmd(ctx, args[1:], env, os.Stdin, stdout, stderr)
	case "status":
		return status(ctx, args[1:], env, stdout, stderr)
	case "deploy":
		return deploy(ctx, args[1:], env, stdout, stderr)
	case "validate":
		return validate(args[1:], stdout, stderr)
	case "new":
		return scaffold(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "fnhost: unknown command %q\n\n%s", args[0], usage)
		return errUsage
	}
}
