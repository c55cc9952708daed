//go:build e2e

package e2e

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/triage-runtime/triage/e2e/harness"
)

// TestStartChaos: triage-shimd, which runs every start, is killed (kill -9) at random
// moments while containers start, eight at a time, runc and gVisor mixed; every other
// round, so is every pod shim, some in the middle of runc's or runsc's create, and every
// third round every gVisor delegate (containerd-shim-runsc-v1). Starts may fail, with an
// error; nothing may be left behind, and a later container reusing a failed one's id gets
// the rules' tier, not the one a dead start recorded (a leftover cgroup would have it
// refused).
func TestStartChaos(t *testing.T) {
	const rounds, batch = 6, 8
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		n := startNode(t, v, twoTiers)
		n.mustCtr(append(n.runArgs("--rm", "--annotation", "triage.io/tier=sandboxed"), image, n.ID("warm"), "sleep", "0.3")...)
		before := n.snapshot()
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
		var failed []string
		for round := range rounds {
			var wg sync.WaitGroup
			var mu sync.Mutex
			for i := range batch {
				id := n.ID(fmt.Sprintf("k%d-%d", round, i))
				args := n.runArgs("--rm")
				if i%2 == 1 {
					args = append(args, "--annotation", "triage.io/tier=sandboxed")
				}
				wg.Go(func() {
					_, stderr, code := n.ctr(append(args, image, id, "sh", "-c", "sleep 0.2")...)
					if code != 0 {
						mu.Lock()
						failed = append(failed, id)
						mu.Unlock()
						t.Logf("%s failed (as a kill may make it): %s", id, strings.TrimSpace(stderr))
					}
				})
			}
			time.Sleep(time.Duration(20+rng.IntN(300)) * time.Millisecond)
			kill := n.snapshot().ShimDaemons
			if round%2 == 1 {
				kill = append(kill, n.routers()...)
			}
			if round%3 == 2 {
				kill = append(kill, n.processes("/containerd-shim-runsc-v1")...)
			}
			for _, pid := range kill {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			wg.Wait()
		}
		// containerd cleans up after dead shims on its own time: let it, then remove what a
		// failed `ctr run --rm` left in its records.
		for _, id := range failed {
			waitFor(t, id+"'s task to go", 20*time.Second, func() bool {
				n.ctr("task", "delete", "-f", id)
				out, _, _ := n.ctr("task", "ls")
				return !strings.Contains(out, id)
			})
			n.ctr("container", "delete", id)
		}
		t.Logf("%d of %d starts failed under the kills", len(failed), rounds*batch)
		// Reused ids get the rules' tier: trusted (runc), whatever a dead start recorded.
		for _, id := range failed {
			if out, stderr, code := n.ctr(append(n.runArgs("--rm"), image, id, "uname", "-r")...); code != 0 || strings.Contains(out, "gvisor") {
				t.Errorf("reusing %s: exit %d, kernel %q, %s; want it to run on the host kernel (tier trusted)", id, code, out, stderr)
			}
			if d := lastDecision(t, n); d["id"] != id || d["tier"] != "trusted" {
				t.Errorf("reusing %s: decision %v, want tier trusted", id, d)
			}
		}
		n.assertSettled(before)
	})
}
