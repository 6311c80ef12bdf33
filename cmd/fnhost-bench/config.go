package main

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is one benchmark run. fromEnv builds it from the environment:
//
//	BENCH_N                 messages per Pulsar throughput contender (default 100000, 100 to 1000000)
//	BENCH_DURATION          length of each plugin load phase, a Go duration (default 3s, 100ms to 60s)
//	BENCH_PULSAR_URL        broker service URL (default pulsar://127.0.0.1:6650)
//	BENCH_PULSAR_ADMIN_URL  broker admin URL (default http://127.0.0.1:8080)
//	BENCH_CPUPROFILE        if set, a CPU profile of this process (which runs the host runtime)
//	                        while the host runtime at parallelism 1 drains its topic
//	BENCH_ONLY              the parts to run, comma-separated: throughput, invoke, trigger-http,
//	                        trigger-pulsar, dev; trigger is both trigger parts (default all; the
//	                        memory section reports what the parts measured)
type Config struct {
	// N is the number of messages each throughput contender drains.
	N int
	// Duration is the length of each plugin load phase.
	Duration time.Duration
	// PulsarURL and AdminURL locate the standalone.
	PulsarURL, AdminURL string
	// CPUProfile is the file for the host runtime's CPU profile; empty for none.
	CPUProfile string
	// Parts are the parts to run, a subset of allParts; all of them by default.
	Parts []string
}

// allParts are the parts of a run, in the order they run.
var allParts = []string{"throughput", "invoke", "trigger-http", "trigger-pulsar", "dev"}

// runs reports whether part is selected.
func (c Config) runs(part string) bool { return slices.Contains(c.Parts, part) }

const (
	minN, maxN             = 100, 1_000_000
	minDuration            = 100 * time.Millisecond
	maxDuration            = time.Minute
	defaultN               = 100_000
	defaultDuration        = 3 * time.Second
	defaultPulsarURL       = "pulsar://127.0.0.1:6650"
	defaultPulsarAdminURL  = "http://127.0.0.1:8080"
	payloadSize            = 100 // bytes per message and per invocation
	rounds                 = 5   // interleaved rounds of the throughput contenders
	latencyRounds          = 5   // interleaved rounds of the latency measurement
	latencyCalls           = 5_000
	warmupCalls            = 500
	loadCallers            = 64
	throughputTargetRatio  = 0.9
	latencyTargetRatio     = 1.2
	invokeTargetRate       = 200_000
	pluginRSSTargetMiB     = 20
	devStartTimeout        = 3 * time.Minute
	processShutdownTimeout = 15 * time.Second
)

// fromEnv reads the Config from env (KEY=value entries), reporting every bad value.
func fromEnv(env []string) (Config, error) {
	vars := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "BENCH_") {
			vars[k] = v
		}
	}
	c := Config{
		N: defaultN, Duration: defaultDuration,
		PulsarURL: defaultPulsarURL, AdminURL: defaultPulsarAdminURL,
		CPUProfile: vars["BENCH_CPUPROFILE"],
		Parts:      allParts,
	}
	var errs []error
	if v, ok := vars["BENCH_ONLY"]; ok {
		c.Parts = nil
		for p := range strings.SplitSeq(v, ",") {
			p = strings.TrimSpace(p)
			if p == "trigger" {
				c.Parts = append(c.Parts, "trigger-http", "trigger-pulsar")
				continue
			}
			if !slices.Contains(allParts, p) {
				errs = append(errs, fmt.Errorf("BENCH_ONLY=%q: unknown part %q, want some of %s or trigger", v, p, strings.Join(allParts, ",")))
				continue
			}
			c.Parts = append(c.Parts, p)
		}
	}
	if v, ok := vars["BENCH_N"]; ok {
		n, err := strconv.Atoi(strings.ReplaceAll(v, "_", ""))
		if err != nil || n < minN || n > maxN {
			errs = append(errs, fmt.Errorf("BENCH_N=%q: want an integer from %d to %d", v, minN, maxN))
		} else {
			c.N = n
		}
	}
	if v, ok := vars["BENCH_DURATION"]; ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < minDuration || d > maxDuration {
			errs = append(errs, fmt.Errorf("BENCH_DURATION=%q: want a Go duration from %s to %s, such as 3s", v, minDuration, maxDuration))
		} else {
			c.Duration = d
		}
	}
	for _, u := range []struct {
		key    string
		dst    *string
		scheme []string
	}{
		{"BENCH_PULSAR_URL", &c.PulsarURL, []string{"pulsar", "pulsar+ssl"}},
		{"BENCH_PULSAR_ADMIN_URL", &c.AdminURL, []string{"http", "https"}},
	} {
		v, ok := vars[u.key]
		if !ok {
			continue
		}
		p, err := url.Parse(v)
		if err != nil || p.Host == "" || !slices.Contains(u.scheme, p.Scheme) {
			errs = append(errs, fmt.Errorf("%s=%q: want a %s://host:port URL", u.key, v, u.scheme[0]))
			continue
		}
		*u.dst = strings.TrimRight(v, "/")
	}
	return c, errors.Join(errs...)
}
