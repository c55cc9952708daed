//go:build e2e

package e2e

import (
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/triage-runtime/triage/e2e/harness"
)

// containerd-shim-triage-v2 hands its calls to triage-shimd, the node daemon it starts when
// none answers. A daemon that is killed, stopped or outlived by its containerd changes nothing
// a user sees: the call then runs in the shim's own process.
func TestShimDaemon(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		n := startNode(t, v, runcOnlyPolicy)
		before := n.snapshot()
		run := func(name string) {
			t.Helper()
			stdout, stderr, code := n.ctr(n.runArgs("--rm", image, n.ID(name), "echo", name)...)
			if code != 0 || strings.TrimSpace(stdout) != name {
				t.Fatalf("ctr run %s: exit %d, stdout %q, stderr %q", name, code, stdout, stderr)
			}
		}
		// No daemon yet: the first start runs in the shim's process and starts one.
		run("first")
		first := n.waitShimDaemon(0)
		run("second")
		if got := n.routedBy(n.ID("second")); got != "daemon=true" {
			t.Fatalf("second start: %q, want it served by the daemon (pid %d)", got, first)
		}
		if got := n.snapshot().ShimDaemons; !slices.Equal(got, []int{first}) {
			t.Fatalf("daemons after the second start: %v, want still %d", got, first)
		}

		if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		run("after-kill")
		second := n.waitShimDaemon(first)

		// A daemon that does not greet within a second is passed by.
		if err := syscall.Kill(second, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		run("while-stopped")
		if got := n.routedBy(n.ID("while-stopped")); got != "daemon=false" {
			t.Fatalf("start while the daemon is stopped: %q, want it run in the shim's process", got)
		}
		if err := syscall.Kill(second, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		run("after-cont")
		if got := n.routedBy(n.ID("after-cont")); got != "daemon=true" {
			t.Fatalf("start after the daemon continued: %q, want it served by the daemon", got)
		}

		// The daemon exits with its containerd.
		n.Restart(t)
		waitFor(t, "the daemon to exit with containerd", 5*time.Second, func() bool {
			return syscall.Kill(second, 0) != nil
		})
		run("after-restart")
		n.waitShimDaemon(second)
		n.assertSettled(before)
	})
}

// waitShimDaemon waits until one triage-shimd other than old serves the node and returns its pid.
func (n *node) waitShimDaemon(old int) int {
	n.t.Helper()
	var pid int
	waitFor(n.t, "a triage-shimd to serve the node", 5*time.Second, func() bool {
		d := n.snapshot().ShimDaemons
		if len(d) == 1 && d[0] != old {
			pid = d[0]
		}
		return pid != 0
	})
	return pid
}

// routedBy finds, in containerd's log (the shim's debug log goes there), whether the start of
// container id ran in the daemon: "daemon=true" or "daemon=false".
func (n *node) routedBy(id string) string {
	n.t.Helper()
	re := regexp.MustCompile(`msg="container routed".*\b(daemon=(?:true|false))\b.*\bid=` + regexp.QuoteMeta(id) + `\b`)
	var found string
	waitFor(n.t, "the start of "+id+" in containerd's log", 5*time.Second, func() bool {
		if m := re.FindStringSubmatch(n.Log()); m != nil {
			found = m[1]
		}
		return found != ""
	})
	return found
}
