package pluginserve

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"reflect"
	"runtime/debug"
	"strconv"
	"syscall"
)

// releaseStartup gives back what the process needed only to start: the heap garbage of
// package initialisation (debug.FreeOSMemory), and the mapped pages of the binary's read-only
// segments (code and read-only data).
//
// A function binary links all of pulsar-client-go for its instance mode, and with it hundreds
// of packages whose init functions run at start-up in every mode. The kernel maps the
// neighbours of each page first touched (fault-around), so start-up leaves most of the binary's
// 20 MiB of code and read-only data mapped, though a plugin serving invocations uses a fraction
// of it. MADV_DONTNEED on a private file mapping that was never written only unmaps its pages:
// they stay in the page cache, and a page touched again is mapped again by a minor fault, so
// what stays mapped is what serving uses. Only pages never written may be released so: a
// mapping that is writable, or holds a written page (Anonymous in smaps; the dynamic loader
// writes the relocations of a read-only-after-relocation segment, in a binary linked with cgo
// or as PIE, before making it read-only), is left alone.
func releaseStartup() error {
	debug.FreeOSMemory()
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return fmt.Errorf("releasing start-up memory: %w", err)
	}
	spans, err := binarySpans(smaps, uint64(reflect.ValueOf(releaseStartup).Pointer()))
	if err != nil {
		return fmt.Errorf("releasing start-up memory: %w", err)
	}
	for _, s := range spans {
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, uintptr(s.start), uintptr(s.end-s.start), syscall.MADV_DONTNEED); errno != 0 {
			return fmt.Errorf("releasing start-up memory: madvise %#x-%#x: %w", s.start, s.end, errno)
		}
	}
	return nil
}

// span is an address range [start, end).
type span struct{ start, end uint64 }

// binarySpans returns, from a /proc/<pid>/smaps listing, the private read-only mappings
// without written (anonymous) pages of the file whose mapping holds pc.
func binarySpans(smaps []byte, pc uint64) ([]span, error) {
	type mapping struct {
		span
		readOnly bool
		file     string // device and inode; empty when anonymous
		written  bool   // holds anonymous pages, or smaps did not say
	}
	var all []mapping
	file := ""
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) == 0 {
			continue
		}
		if bytes.HasSuffix(f[0], []byte(":")) {
			// A field of the mapping above: "Anonymous: 0 kB".
			if len(all) > 0 && string(f[0]) == "Anonymous:" && len(f) >= 2 {
				all[len(all)-1].written = string(f[1]) != "0"
			}
			continue
		}
		// A mapping: address perms offset dev inode [path]
		if len(f) < 5 || len(f[1]) < 4 {
			continue
		}
		lo, hi, ok := bytes.Cut(f[0], []byte("-"))
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 != nil || err2 != nil || start >= end {
			continue
		}
		m := mapping{
			span:     span{start, end},
			readOnly: f[1][1] == '-' && f[1][3] == 'p',
			written:  true, // until its Anonymous line says otherwise
		}
		if string(f[4]) != "0" {
			m.file = string(f[3]) + " " + string(f[4])
		}
		if start <= pc && pc < end {
			file = m.file
		}
		all = append(all, m)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if file == "" {
		return nil, fmt.Errorf("no file mapping holds the code at %#x", pc)
	}
	var spans []span
	for _, m := range all {
		if m.file == file && m.readOnly && !m.written {
			spans = append(spans, m.span)
		}
	}
	return spans, nil
}
