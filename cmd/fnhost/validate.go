package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/fnhost/fnhost/internal/manifest"
)

// validate checks manifests: files or directories of *.yaml. It prints every problem and
// returns an error when there is one.
func validate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fnhost validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: fnhost validate <file|dir>...

Checks function manifests (pulsar-admin FunctionConfig YAML) the way the host runtime loads
them: unknown fields, wrong types, missing inputs and settings fnhost cannot honour are errors
naming the file, line and field. Exits 1 when any manifest is invalid.
`)
	}
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	var errs []error
	n := 0
	for _, p := range fs.Args() {
		st, err := os.Stat(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if st.IsDir() {
			fns, err := manifest.LoadDir(p)
			n += len(fns)
			if err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if _, err := manifest.Load(p); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(stderr, err)
		return errReported
	}
	fmt.Fprintf(stdout, "ok: %d function manifest(s) valid\n", n)
	return nil
}
