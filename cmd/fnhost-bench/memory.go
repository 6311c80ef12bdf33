package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// memory collects resident-set sizes for the memory section.
type memory struct {
	// baseline is the bare go-plugin echo's RSS after its load; zero until measured.
	baseline rss
	entries  []memEntry
	notes    []string
}

type memEntry struct {
	label  string
	rss    rss
	plugin bool // held to the per-plugin target
	failed bool // not measured: a MISS, explained in a note
}

func (m *memory) add(label string, r rss, plugin bool) {
	m.entries = append(m.entries, memEntry{label: label, rss: r, plugin: plugin})
}

func (m *memory) section() *section {
	sec := newSection("memory (VmRSS)", "RSS", "anon", "file", "vs baseline", "target", "")
	target := fmt.Sprintf("≤%d MiB", pluginRSSTargetMiB)
	if m.baseline.total > 0 {
		sec.add("baseline: bare go-plugin echo (after load)", mib(m.baseline.total), mib(m.baseline.anon), mib(m.baseline.file))
	}
	for _, e := range m.entries {
		if e.failed {
			sec.add(e.label, "failed", "", "", "", target, "MISS")
			continue
		}
		vs := ""
		if m.baseline.total > 0 {
			vs = ratio(float64(e.rss.total) / float64(m.baseline.total))
		}
		cells := []string{mib(e.rss.total), mib(e.rss.anon), mib(e.rss.file), vs}
		if e.plugin {
			cells = append(cells, target, verdict(e.rss.total <= pluginRSSTargetMiB<<20))
		}
		sec.add(e.label, cells...)
	}
	sec.note("anon is heap and stacks, file is mostly the binary's text (RssAnon, RssFile)")
	sec.notes = m.notes
	return sec
}

// devMemory runs `fnhost dev` on the repository's manifests, waits until its functions run,
// and records its RSS and its plugins'. A dev process that does not come up is a MISS with a
// note, not an operational error.
func (b *bench) devMemory(ctx context.Context, mem *memory) error {
	b.progress("fnhost dev: starting on manifests/functions (it builds every function, at most %s)…", devStartTimeout)
	cmd := exec.Command(b.fnhostBin, "dev", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--watch=false", "--manifests", "manifests/functions", "--build-dir", filepath.Join(b.tmp, "dev-build"),
		"--pulsar-url=") // embedded, whatever FNHOST_PULSAR_URL says
	cmd.Dir = b.root
	stdout := &lineWatch{want: "function(s) running", found: make(chan struct{})}
	stderr := &tail{max: 4096}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%w: starting %s dev: %w", errOperational, b.fnhostBin, err)
	}
	proc := goTask(func() error {
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("fnhost dev: %w; stderr: %s", err, stderr)
		}
		return nil
	})
	stop := func() error {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), processShutdownTimeout+5*time.Second)
		defer cancel()
		return stopProcess(stopCtx, cmd, proc)
	}
	failed := func(err error) error {
		mem.notes = append(mem.notes, fmt.Sprintf("fnhost dev: %v", err))
		mem.entries = append(mem.entries, memEntry{label: "fnhost dev plugins", plugin: true, failed: true})
		return nil
	}
	startCtx, cancel := context.WithTimeout(ctx, devStartTimeout)
	defer cancel()
	select {
	case <-stdout.found:
	case <-proc.done:
		return failed(fmt.Errorf("exited before its functions ran: %w", proc.err))
	case <-startCtx.Done():
		err := stop()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return failed(errors.Join(fmt.Errorf("functions not running within %s", devStartTimeout), err))
	}
	pid := cmd.Process.Pid
	r, err := vmRSS(pid)
	if err != nil {
		return errors.Join(fmt.Errorf("%w: %w", errOperational, err), stop())
	}
	kids, err := children(pid)
	if err != nil {
		return errors.Join(fmt.Errorf("%w: %w", errOperational, err), stop())
	}
	mem.add(fmt.Sprintf("fnhost dev process (runtime + trigger, %d plugins, idle)", len(kids)), r, false)
	for _, k := range kids {
		v, err := vmRSS(k.pid)
		if err != nil {
			return errors.Join(fmt.Errorf("%w: %w", errOperational, err), stop())
		}
		mem.add(fmt.Sprintf("fnhost dev plugin %s (idle)", k.comm), v, true)
	}
	b.progress("fnhost dev: stopping…")
	if err := stop(); err != nil {
		mem.notes = append(mem.notes, fmt.Sprintf("fnhost dev: stopping: %v", err))
	}
	return nil
}

// rss is a process's resident set, in bytes: in total (VmRSS), anonymous (heap, stacks) and
// file-backed (mostly the binary's text).
type rss struct{ total, anon, file int64 }

// vmRSS reads the resident set of process pid from /proc/<pid>/status.
func vmRSS(pid int) (rss, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return rss{}, fmt.Errorf("reading the memory of pid %d: %w", pid, err)
	}
	var r rss
	found := false
	for line := range strings.SplitSeq(string(b), "\n") {
		key, v, ok := strings.Cut(line, ":")
		var dst *int64
		switch key {
		case "VmRSS":
			dst, found = &r.total, true
		case "RssAnon":
			dst = &r.anon
		case "RssFile":
			dst = &r.file
		}
		if !ok || dst == nil {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return rss{}, fmt.Errorf("pid %d: %s %q: %w", pid, key, v, err)
		}
		*dst = kb << 10
	}
	if !found {
		return rss{}, fmt.Errorf("pid %d: no VmRSS in /proc/%d/status (a zombie?)", pid, pid)
	}
	return r, nil
}

type proc struct {
	pid  int
	comm string
}

// children lists the processes whose parent is ppid, by name, from /proc/*/stat.
func children(ppid int) ([]proc, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue // not a process
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // it exited meanwhile
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		open, closing := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || closing < open {
			continue
		}
		fields := strings.Fields(string(b[closing+1:]))
		if len(fields) < 2 {
			continue
		}
		if p, err := strconv.Atoi(fields[1]); err == nil && p == ppid {
			out = append(out, proc{pid: pid, comm: string(b[open+1 : closing])})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].comm < out[j].comm })
	return out, nil
}

// lineWatch is a process's stdout: it closes found at the first line containing want.
type lineWatch struct {
	want  string
	found chan struct{}

	mu   sync.Mutex
	buf  []byte
	seen bool
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	sc := bufio.NewScanner(bytes.NewReader(w.buf))
	for sc.Scan() {
		if strings.Contains(sc.Text(), w.want) {
			w.seen = true
			w.buf = nil
			close(w.found)
			return len(p), nil
		}
	}
	if i := bytes.LastIndexByte(w.buf, '\n'); i >= 0 {
		w.buf = w.buf[i+1:] // keep the unfinished line only
	}
	return len(p), nil
}
