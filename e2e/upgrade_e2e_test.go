//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/triage-runtime/triage/e2e/harness"
)

// previousCommit is the Triage that TestUpgradeInPlace upgrades from: the last commit
// before f93c509, where triage-router relayed a runc pod's every task call to a
// containerd-shim-runc-v2 of its own. From f93c509 on the router hosts containerd's runc
// task service itself, so pods that commit's binaries started must go on, and end, under
// binaries of the other design.
const previousCommit = "6a6c862"

// triageBinaries are what `triage install` puts in its bin folder.
var triageBinaries = []string{"containerd-shim-triage-v2", "triage-shimd", "triage-router", "triage"}

// previous holds previousCommit's binaries, built once per test process.
var previous struct {
	once sync.Once
	tmp  string // a temporary folder: the worktree, then the binaries in bin
	err  error
}

// TestMain removes previousCommit's binaries once every test has run.
func TestMain(m *testing.M) {
	code := m.Run()
	if previous.tmp != "" {
		os.RemoveAll(previous.tmp)
	}
	os.Exit(code)
}

// previousBinaries builds triageBinaries at previousCommit, from a worktree of the repository
// this test is in, and returns their folder. A failure fails the test: a test of the
// upgrade that skipped would pass without testing it.
func previousBinaries(t *testing.T) string {
	t.Helper()
	previous.once.Do(func() {
		if previous.tmp, previous.err = os.MkdirTemp("", "triage-"+previousCommit+"-"); previous.err == nil {
			previous.err = buildPrevious(previous.tmp)
		}
	})
	if previous.err != nil {
		t.Fatalf("build Triage %s: %v", previousCommit, previous.err)
	}
	return filepath.Join(previous.tmp, "bin")
}

// buildPrevious builds triageBinaries at previousCommit into dir/bin, in a worktree at
// dir/src that it removes.
func buildPrevious(dir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	run := func(wd string, env []string, name string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir, cmd.Env = wd, append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("%s %s: %w:\n%s", name, strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out)), nil
	}
	repo, err := run("", nil, "git", "rev-parse", "--show-toplevel")
	if err != nil {
		return err
	}
	src, bin := filepath.Join(dir, "src"), filepath.Join(dir, "bin")
	if _, err := run(repo, nil, "git", "worktree", "add", "--detach", src, previousCommit); err != nil {
		return err
	}
	defer run(repo, nil, "git", "worktree", "remove", "--force", src)
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	for _, name := range triageBinaries {
		if _, err := run(src, []string{"CGO_ENABLED=0", "GOTOOLCHAIN=local"}, gobin, "build", "-trimpath", "-buildvcs=false",
			"-o", filepath.Join(bin, name), "./cmd/"+name); err != nil {
			return err
		}
	}
	return nil
}

// Pods that the previous Triage started keep running, and end cleanly, after its binaries
// are replaced in place as `triage install` does (each new file renamed over the old one):
// their routers (the old binary, still running) serve them; exec, kill and delete, which
// runs the new containerd-shim-triage-v2 on the old pod's bundle, work; a container that
// joins an old CRI pod runs in that pod's runc shim; and a new container runs in the new
// design, its init a child of its pod's triage-router. Nothing is left behind.
func TestUpgradeInPlace(t *testing.T) {
	old := previousBinaries(t)
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		bin := t.TempDir()
		for _, name := range triageBinaries {
			copyFile(t, filepath.Join(old, name), filepath.Join(bin, name))
		}
		n := startNodeBin(t, v, runcOnlyPolicy, bin)
		n.mustCtr(n.runArgs("--rm", image, n.ID("warm"), "true")...)
		before := n.snapshot()

		// The previous Triage: a container through ctr, and a CRI pod.
		c1 := n.ID("c1")
		n.mustCtr(n.runArgs("-d", image, c1, "sleep", "300")...)
		podID, podFile := n.runPod(pod{name: "old", namespace: "default"})
		a := n.startContainer(podID, podFile, container{name: "a", script: "echo a-ok; sleep 300"})
		n.waitLogs(a, "a-ok")
		oldShims := n.processes("/containerd-shim-runc-v2")
		if len(oldShims) == 0 {
			t.Fatalf("no containerd-shim-runc-v2 runs for the previous Triage's containers: are the binaries of %s not the previous design?", previousCommit)
		}
		if parent := ppid(t, n.criPid(a)); !slices.Contains(oldShims, parent) {
			t.Fatalf("container a's init is a child of pid %d (%s), want a runc shim %v", parent, cmdline(parent), oldShims)
		}
		oldRouters := n.routers()

		// Upgrade in place, as `triage install` does.
		for _, name := range triageBinaries {
			installOver(t, filepath.Join(triageBin(t), name), filepath.Join(bin, name))
		}
		for _, pid := range oldRouters {
			if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || !strings.HasSuffix(exe, " (deleted)") {
				t.Fatalf("router pid %d runs %q (%v), want the previous binary, replaced on disk", pid, exe, err)
			}
		}

		// The old ctr container: exec, kill, delete.
		if out := n.mustCtr("task", "exec", "--exec-id", "x", c1, "echo", "ok"); strings.TrimSpace(out) != "ok" {
			t.Fatalf("exec into %s printed %q, want ok", c1, out)
		}
		n.removeTasks(c1)

		// The old CRI pod: a container joins it, in its runc shim.
		b := n.startContainer(podID, podFile, container{name: "b", script: "echo b-ok; sleep 300"})
		n.waitLogs(b, "b-ok")
		if parent, want := ppid(t, n.criPid(b)), ppid(t, n.criPid(a)); parent != want {
			t.Fatalf("container b's init is a child of pid %d (%s), want the old pod's runc shim, pid %d (%s)", parent, cmdline(parent), want, cmdline(want))
		}
		for _, id := range []string{a, b} {
			if out := n.mustCrictl("exec", "--sync", id, "sh", "-c", "echo exec-ok"); out != "exec-ok" {
				t.Fatalf("crictl exec into %s: %q, want exec-ok", id, out)
			}
		}
		n.removePod(podID)

		// A new container runs in the new design: in its pod's triage-router, with no runc shim.
		c2 := n.ID("c2")
		n.mustCtr(n.runArgs("-d", image, c2, "sleep", "300")...)
		parent := ppid(t, n.taskPid(c2))
		if args := strings.Fields(cmdline(parent)); len(args) == 0 || filepath.Base(args[0]) != "triage-router" || !slices.Contains(args, "-runc") {
			t.Fatalf("new container %s's init is a child of pid %d (%s), want a triage-router -runc", c2, parent, cmdline(parent))
		}
		if shims := n.processes("/containerd-shim-runc-v2"); slices.ContainsFunc(shims, func(p int) bool { return !slices.Contains(oldShims, p) }) {
			t.Fatalf("a containerd-shim-runc-v2 started after the upgrade: %v (the previous Triage's: %v)", shims, oldShims)
		}
		n.removeTasks(c2)

		// The previous triage-shimd may still serve the node: an upgrade leaves it to exit
		// when idle or with containerd (its socket names its binary's inode, so the new front
		// started a new one). The snapshot counts node daemons as no leak.
		n.assertSettled(before)
	})
}

// criPid is the pid of CRI container id's init, as `crictl inspect` reports it.
func (n *node) criPid(id string) int {
	n.t.Helper()
	var info struct {
		Info struct {
			Pid int `json:"pid"`
		} `json:"info"`
	}
	out := n.mustCrictl("inspect", "-o", "json", id)
	if err := json.Unmarshal([]byte(out), &info); err != nil || info.Info.Pid == 0 {
		n.t.Fatalf("crictl inspect %s: no pid (%v):\n%s", id, err, out)
	}
	return info.Info.Pid
}

// copyFile copies the executable src to dst.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// installOver replaces dst with a copy of src as `triage install` does: the copy is made
// under a temporary name in dst's folder and renamed over dst, so a process running dst
// keeps its binary.
func installOver(t *testing.T, src, dst string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".new")
	copyFile(t, src, tmp)
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}
