package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// serveConfig is the configuration of dev and runtime. Each field has an FNHOST_* variable;
// flags override the environment.
type serveConfig struct {
	Addr      string     // FNHOST_ADDR: the trigger's listen address (dev)
	AdminAddr string     // FNHOST_ADMIN_ADDR: metrics, health and status
	Manifests string     // FNHOST_MANIFESTS: a directory of manifests
	PulsarURL string     // FNHOST_PULSAR_URL: empty for embedded mode (dev)
	AdminURL  string     // FNHOST_ADMIN_URL: Pulsar's admin REST API (EFFECTIVELY_ONCE checks)
	BuildDir  string     // FNHOST_BUILD_DIR: where functions built from source go
	Watch     bool       // FNHOST_WATCH: rebuild and reload functions when their source changes (dev)
	LogLevel  slog.Level // FNHOST_LOG_LEVEL: debug, info, warn or error
	// FNHOST_SHUTDOWN_TIMEOUT: the bound on finishing in-flight work at shutdown
	ShutdownTimeout time.Duration
	// FNHOST_MAX_IN_FLIGHT: concurrent invocations per plugin process
	MaxInFlight int
	// FNHOST_STORE_TOPIC: the compacted topic of async invocation records (dev with Pulsar,
	// trigger); default pulsarinvoke.DefaultStoreTopic
	StoreTopic string
}

func defaultServeConfig() serveConfig {
	return serveConfig{
		Addr:            "127.0.0.1:8088",
		AdminAddr:       "127.0.0.1:8089",
		Manifests:       "manifests/functions",
		AdminURL:        "http://127.0.0.1:8080",
		Watch:           true,
		LogLevel:        slog.LevelInfo,
		ShutdownTimeout: 30 * time.Second,
		MaxInFlight:     64,
	}
}

// serveConfigFromEnv reads FNHOST_* variables from env (KEY=VALUE entries) over the defaults.
// Every malformed value is reported; none falls back silently.
func serveConfigFromEnv(env []string) (serveConfig, error) {
	c := defaultServeConfig()
	var errs []error
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, "FNHOST_") {
			continue
		}
		bad := func(err error) { errs = append(errs, fmt.Errorf("%s=%q: %w", k, v, err)) }
		switch k {
		case "FNHOST_ADDR":
			c.Addr = v
		case "FNHOST_ADMIN_ADDR":
			c.AdminAddr = v
		case "FNHOST_MANIFESTS":
			c.Manifests = v
		case "FNHOST_PULSAR_URL":
			c.PulsarURL = v
		case "FNHOST_ADMIN_URL":
			c.AdminURL = v
		case "FNHOST_BUILD_DIR":
			c.BuildDir = v
		case "FNHOST_STORE_TOPIC":
			c.StoreTopic = v
		case "FNHOST_WATCH":
			b, err := strconv.ParseBool(v)
			if err != nil {
				bad(errors.New("want true or false"))
			}
			c.Watch = b
		case "FNHOST_LOG_LEVEL":
			if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
				bad(errors.New("want debug, info, warn or error"))
			}
		case "FNHOST_SHUTDOWN_TIMEOUT":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				bad(errors.New("want a positive duration such as 30s"))
			}
			c.ShutdownTimeout = d
		case "FNHOST_MAX_IN_FLIGHT":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				bad(errors.New("want a whole number ≥ 1"))
			}
			c.MaxInFlight = n
		}
	}
	return c, errors.Join(errs...)
}
