// Package pulsartest connects integration tests to the real Pulsar standalone that
// scripts/pulsar runs (make pulsar-up): a client, an admin client, the real pulsar-admin CLI,
// and a unique topic per test that is deleted when the test ends.
//
// A missing broker is a test failure with a hint, never a silent skip: the integration tests
// exist to prove fnhost against a real Pulsar.
//
// The standalone is found through FNHOST_TEST_PULSAR_URL (default pulsar://127.0.0.1:6650) and
// FNHOST_TEST_PULSAR_ADMIN_URL (default http://127.0.0.1:8080).
package pulsartest

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
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	pulsarlog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/admin/config"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/rest"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
)

const hint = "start one with 'make pulsar-up' (scripts/pulsar start)"

// ServiceURL is the broker URL integration tests use.
func ServiceURL() string { return envOr("FNHOST_TEST_PULSAR_URL", "pulsar://127.0.0.1:6650") }

// AdminURL is the admin (HTTP) URL integration tests use.
func AdminURL() string { return envOr("FNHOST_TEST_PULSAR_ADMIN_URL", "http://127.0.0.1:8080") }

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// Require fails the test at once, with a hint, unless a standalone answers at AdminURL with
// its cluster created.
func Require(t testing.TB) {
	t.Helper()
	if err := Probe(context.Background()); err != nil {
		t.Fatalf("no Pulsar standalone answers at %s (%v): %s", AdminURL(), err, hint)
	}
}

// Probe reports whether the standalone's admin API answers and lists a cluster, within 5 s.
func Probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, AdminURL()+"/admin/v2/clusters", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }() // a response body: closing it only releases the connection
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /admin/v2/clusters: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// Client returns a pulsar-client-go client for the standalone, closed when the test ends.
func Client(t testing.TB) pulsar.Client {
	t.Helper()
	Require(t)
	c, err := pulsar.NewClient(pulsar.ClientOptions{
		URL:               ServiceURL(),
		ConnectionTimeout: 10 * time.Second,
		OperationTimeout:  30 * time.Second,
		Logger:            pulsarlog.NewLoggerWithSlog(Logger(t)),
	})
	if err != nil {
		t.Fatalf("connecting to %s: %v: %s", ServiceURL(), err, hint)
	}
	t.Cleanup(c.Close)
	return c
}

// Admin returns an admin client for the standalone.
func Admin(t testing.TB) pulsaradmin.Client {
	t.Helper()
	Require(t)
	a, err := pulsaradmin.NewClient(&pulsaradmin.Config{WebServiceURL: AdminURL()})
	if err != nil {
		t.Fatalf("admin client for %s: %v", AdminURL(), err)
	}
	return a
}

// FunctionsAdmin returns an admin client for the functions REST API, which Pulsar serves under
// /admin/v3 (the client's default, v2, answers function status and stats with empty objects).
func FunctionsAdmin(t testing.TB) pulsaradmin.Client {
	t.Helper()
	Require(t)
	a, err := pulsaradmin.NewClient(&pulsaradmin.Config{WebServiceURL: AdminURL(), PulsarAPIVersion: config.V3})
	if err != nil {
		t.Fatalf("admin client for %s: %v", AdminURL(), err)
	}
	return a
}

// Logger returns a slog logger that writes Warn and above through t.Log, so client noise
// appears only next to a failing test's output.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9_-]+`)

// Name returns a name unique to this test run, built from the test's name, fit for a topic,
// subscription or function name.
func Name(t testing.TB) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random suffix: %v", err)
	}
	base := strings.Trim(unsafeChars.ReplaceAllString(t.Name(), "-"), "-")
	if len(base) > 60 {
		base = base[:60]
	}
	return strings.ToLower(base) + "-" + hex.EncodeToString(b[:])
}

// Topic returns a fresh persistent topic in public/default, deleted (with its subscriptions)
// when the test ends.
func Topic(t testing.TB) string {
	t.Helper()
	topic := "persistent://public/default/" + Name(t)
	admin := Admin(t)
	t.Cleanup(func() {
		tn, err := utils.GetTopicName(topic)
		if err != nil {
			t.Errorf("parsing %s: %v", topic, err)
			return
		}
		// The topic may never have been created (a test that failed early); that is fine.
		if err := admin.Topics().Delete(*tn, true, true); err != nil && !isNotFound(err) {
			t.Errorf("deleting topic %s: %v", topic, err)
		}
	})
	return topic
}

func isNotFound(err error) bool {
	var e rest.Error
	return errors.As(err, &e) && e.Code == http.StatusNotFound
}

// Root returns the repository root (the directory holding go.mod).
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("working directory: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// AdminCLI runs the real pulsar-admin (scripts/pulsar-admin) with args against the standalone,
// bounded by ctx, and returns its standard output. A non-zero exit is returned as an error that
// carries the CLI's standard error.
func AdminCLI(ctx context.Context, t testing.TB, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, filepath.Join(Root(t), "scripts", "pulsar-admin"), args...)
	cmd.Env = append(os.Environ(), "PULSAR_ADMIN_URL="+AdminURL())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("pulsar-admin %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}
