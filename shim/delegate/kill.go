package delegate

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// KillShim ends with SIGKILL the delegate shim whose `start` ran in bundle, for a delegate
// that would not shut down although it serves nothing that lives. Shims built on
// containerd's library write their pid to the bundle's shim.pid; a process that runs
// another binary than binary (the pid reused) is left alone. It reports whether it sent
// the signal.
func KillShim(bundle, binary string) bool {
	b, err := os.ReadFile(filepath.Join(bundle, "shim.pid"))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return false
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if resolved, rerr := filepath.EvalSymlinks(binary); rerr == nil {
		binary = resolved
	}
	if err != nil || strings.TrimSuffix(exe, " (deleted)") != binary {
		return false
	}
	return unix.Kill(pid, unix.SIGKILL) == nil
}
