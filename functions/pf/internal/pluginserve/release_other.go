//go:build !linux

package pluginserve

import "runtime/debug"

// releaseStartup gives back the heap garbage of package initialisation. On Linux it also
// unmaps the start-up pages of the binary (release_linux.go).
func releaseStartup() error {
	debug.FreeOSMemory()
	return nil
}
