package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

var validName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// scaffold creates functions/<name> (main.go and a test) and manifests/functions/<name>.yaml
// under the project directory, refusing to overwrite anything.
func scaffold(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fnhost new", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".", "the project directory (holding go.mod)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: fnhost new [--dir DIR] <name>

Creates a function: functions/<name>/main.go with its handler, a unit test, and
manifests/functions/<name>.yaml with topics <name>-in and <name>-out. Nothing is overwritten.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	name := fs.Arg(0)
	if !validName.MatchString(name) {
		fmt.Fprintf(stderr, "fnhost new: %q is not a valid function name: use lower-case letters, digits and '-', starting with a letter\n", name)
		return errReported
	}
	module, err := modulePath(filepath.Join(*dir, "go.mod"))
	if err != nil {
		return err
	}
	files := map[string]string{
		filepath.Join(*dir, "functions", name, "main.go"):           mainTemplate,
		filepath.Join(*dir, "functions", name, "main_test.go"):      testTemplate,
		filepath.Join(*dir, "manifests", "functions", name+".yaml"): manifestTemplate,
	}
	for p := range files {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("%s already exists; nothing was created", p)
		}
	}
	repl := strings.NewReplacer("{{name}}", name, "{{module}}", module)
	for p, tmpl := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(repl.Replace(tmpl)), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "created", p)
	}
	fmt.Fprintf(stdout, "\nTry it:  echo hello | go run ./functions/%s\n", name)
	return nil
}

// modulePath reads the module path from a go.mod file.
func modulePath(gomod string) (string, error) {
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", fmt.Errorf("finding the Go module (run fnhost new in a project directory, or pass --dir): %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if m, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.Trim(strings.TrimSpace(m), `"`), nil
		}
	}
	return "", errors.New(gomod + ": no module line")
}

const mainTemplate = `// Command {{name}} is a function.
package main

import (
	"context"

	"github.com/fnhost/fnhost/functions/pf"
)

// handle is called once per input message; its result is the output message.
func handle(ctx context.Context, in []byte) ([]byte, error) {
	return in, nil
}

func main() { pf.Start(handle) }
`

const testTemplate = `package main

import (
	"context"
	"testing"
)

func TestHandle(t *testing.T) {
	out, err := handle(context.Background(), []byte("hello"))
	if err != nil || string(out) != "hello" {
		t.Fatalf("handle(hello) = %q, %v", out, err)
	}
}
`

const manifestTemplate = `# {{name}}: a pulsar-admin FunctionConfig (deploy: scripts/deploy {{name}}).
tenant: public
namespace: default
name: {{name}}
runtime: GO
go: functions/{{name}}
inputs:
  - persistent://public/default/{{name}}-in
output: persistent://public/default/{{name}}-out
parallelism: 1
processingGuarantees: ATLEAST_ONCE
`
