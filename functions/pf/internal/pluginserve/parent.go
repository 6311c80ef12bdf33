package pluginserve

import (
	"os"
	"sync"
	"time"
)

// parentInterval is how often the plugin checks that its host is alive. A host killed with
// SIGKILL cannot stop its plugins, and go-plugin's server does not notice the lost connection:
// without this check they would run on, orphaned, holding their resources.
const parentInterval = time.Second

// watchParent returns a channel closed when the parent process changes, that is when the host
// died and this process was re-parented. The watch ends when stop is closed; wait waits for
// it.
func watchParent(stop <-chan struct{}, interval time.Duration) (gone <-chan struct{}, wait func()) {
	ppid := os.Getppid()
	ch := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if os.Getppid() != ppid {
					close(ch)
					return
				}
			}
		}
	})
	return ch, wg.Wait
}
