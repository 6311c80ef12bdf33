package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fnhost/fnhost/runtime/admin"
)

// status prints the functions and instances of a running dev or runtime.
func status(ctx context.Context, args, env []string, stdout, stderr io.Writer) error {
	c, err := serveConfigFromEnv(env)
	if err != nil {
		fmt.Fprintln(stderr, "fnhost:", err)
		return errReported
	}
	fs := flag.NewFlagSet("fnhost status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.AdminAddr, "admin-addr", c.AdminAddr, "the admin address of the running dev or runtime (FNHOST_ADMIN_ADDR)")
	asJSON := fs.Bool("json", false, "print the status document as JSON")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: fnhost status [--admin-addr HOST:PORT] [--json]\n\nShows each function and instance of a running fnhost dev or runtime.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	url := "http://" + c.AdminAddr + "/v1/status"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "fnhost status: nothing answers at %s (is fnhost dev or runtime running? --admin-addr): %v\n", c.AdminAddr, err)
		return errReported
	}
	defer func() { _ = resp.Body.Close() }() // a response body: closing it only releases the connection
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("reading %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	if *asJSON {
		_, err := stdout.Write(body)
		return err
	}
	var st admin.StatusResponse
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("decoding %s: %w", url, err)
	}
	ready := "ready"
	if !st.Ready {
		ready = "NOT READY"
	}
	fmt.Fprintf(stdout, "mode: %s, %s\n\n", st.Mode, ready)
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FUNCTION\tINSTANCE\tSTATE\tPID\tRESTARTS\tRELOADS\tLAST ERROR")
	for _, f := range st.Functions {
		lastErr := f.LastError
		for _, s := range f.Pool.Slots {
			e := s.LastError
			if e == "" {
				e = lastErr
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%s\n", f.FQFN, s.Instance, s.State, s.Pid, s.Restarts, f.Pool.Reloads, firstLine(e))
		}
	}
	return tw.Flush()
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
