package datasock

import (
	"net"
	"os"
	"syscall"
)

// trustedPeer reports whether the process at the other end of c is this process's parent (the
// host that started it) or this process itself, running as the same user, as the kernel
// reports it (SO_PEERCRED).
func trustedPeer(c net.Conn) bool {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return false
	}
	var cred *syscall.Ucred
	cerr := raw.Control(func(fd uintptr) {
		cred, err = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	if cerr != nil || err != nil {
		return false
	}
	pid := int(cred.Pid)
	return int(cred.Uid) == os.Getuid() && (pid == os.Getppid() || pid == os.Getpid())
}
