package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// bench is the state of one run.
type bench struct {
	cfg    Config
	root   string // the repository root
	tmp    string // binaries and build output, removed at the end
	runID  string // in every topic and function name of this run
	log    *slog.Logger
	stderr io.Writer

	echoBin, bareBin, fnhostBin, ginBin string
}

func (b *bench) progress(format string, args ...any) {
	fmt.Fprintf(b.stderr, "bench: "+format+"\n", args...)
}

func run(ctx context.Context, cfg Config, stdout, stderr io.Writer) (err error) {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "fnhost-bench-")
	if err != nil {
		return fmt.Errorf("creating a temporary directory: %w", err)
	}
	defer func() {
		if rerr := os.RemoveAll(tmp); rerr != nil {
			err = errors.Join(err, fmt.Errorf("removing %s: %w", tmp, rerr))
		}
	}()
	var id [4]byte
	if _, err := rand.Read(id[:]); err != nil {
		return fmt.Errorf("random run id: %w", err)
	}
	b := &bench{
		cfg: cfg, root: root, tmp: tmp, runID: hex.EncodeToString(id[:]), stderr: stderr,
		// Client libraries log through this; only what a human should see.
		log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}

	version, err := pulsarVersion(ctx, cfg.AdminURL)
	if err != nil {
		return fmt.Errorf("no Pulsar standalone answers at %s (%w): start one with 'make pulsar-up' (scripts/pulsar start)", cfg.AdminURL, err)
	}
	b.progress("run %s: Pulsar %s at %s, %d CPUs, %s", b.runID, version, cfg.PulsarURL, runtime.NumCPU(), runtime.Version())
	if err := b.build(ctx); err != nil {
		return err
	}

	rep := &report{header: fmt.Sprintf("fnhost bench (%d CPUs, Pulsar %s at %s, %s, run %s)",
		runtime.NumCPU(), version, cfg.PulsarURL, runtime.Version(), b.runID)}
	mem := &memory{}

	if cfg.runs("throughput") {
		tp, err := b.throughput(ctx, mem)
		if err != nil {
			return err
		}
		rep.sections = append(rep.sections, tp)
	}
	if cfg.runs("invoke") {
		inv, err := b.invoke(ctx, mem)
		if err != nil {
			return err
		}
		rep.sections = append(rep.sections, inv)
	}
	if cfg.runs("trigger-http") {
		sec, err := b.triggerEmbedded(ctx)
		if err != nil {
			return err
		}
		rep.sections = append(rep.sections, sec)
	}
	if cfg.runs("trigger-pulsar") {
		sec, err := b.triggerPulsar(ctx)
		if err != nil {
			return err
		}
		rep.sections = append(rep.sections, sec)
	}
	if cfg.runs("dev") {
		if err := b.devMemory(ctx, mem); err != nil {
			return err
		}
	}
	rep.sections = append(rep.sections, mem.section())

	b.progress("done")
	return rep.write(stdout)
}

// build compiles the binaries the run launches, as make plugins and make build do.
func (b *bench) build(ctx context.Context) error {
	b.echoBin = filepath.Join(b.tmp, "echo")
	b.bareBin = filepath.Join(b.tmp, "bareecho")
	b.fnhostBin = filepath.Join(b.tmp, "fnhost")
	b.ginBin = filepath.Join(b.tmp, "baregin")
	for _, t := range []struct{ out, pkg string }{
		{b.echoBin, "./functions/echo"},
		{b.bareBin, "./cmd/fnhost-bench/bareecho"},
		{b.fnhostBin, "./cmd/fnhost"},
		{b.ginBin, "./cmd/fnhost-bench/baregin"},
	} {
		b.progress("building %s", t.pkg)
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", t.out, t.pkg)
		cmd.Dir = b.root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", t.pkg, err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// pulsarVersion asks the broker's admin API for its version, within 5 s.
func pulsarVersion(ctx context.Context, adminURL string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, adminURL+"/admin/v2/brokers/version", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }() // a response body: closing it only releases the connection
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /admin/v2/brokers/version: %s", resp.Status)
	}
	return strings.Trim(strings.TrimSpace(string(body)), `"`), nil
}

// repoRoot is the directory holding go.mod, found from the working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: run make bench from the repository")
		}
		dir = parent
	}
}
