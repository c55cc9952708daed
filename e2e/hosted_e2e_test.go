//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/triage-runtime/triage/e2e/harness"
)

// A runc tier's pod runs in one process: Triage's pod shim (triage-router) hosts
// containerd's runc task service, so the container's init is its child and no
// containerd-shim-runc-v2 runs. Exec, exit codes, OOM kills and every task event reach
// containerd as they do with runc's own shim, on both task API versions.
func TestRuncPodIsOneProcess(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		n := startNode(t, v, runcOnlyPolicy)
		n.mustCtr(n.runArgs("--rm", image, n.ID("warm"), "true")...)
		before := n.snapshot()
		events := n.watchEvents()

		c1 := n.ID("one")
		n.mustCtr(n.runArgs("-d", image, c1, "sleep", "300")...)
		init := n.taskPid(c1)
		routers := n.routers()
		if parent := ppid(t, init); !slices.Contains(routers, parent) {
			t.Fatalf("the container's init (pid %d) is a child of pid %d (%s), want the pod's triage-router %v", init, parent, cmdline(parent), routers)
		}
		if shims := n.processes("/containerd-shim-runc-v2"); len(shims) > 0 {
			t.Fatalf("containerd-shim-runc-v2 runs for a runc-tier pod: %v", shims)
		}
		if out := n.mustCtr("task", "exec", "--exec-id", "e1", c1, "sh", "-c", "echo exec-ok"); strings.TrimSpace(out) != "exec-ok" {
			t.Fatalf("exec into the hosted container printed %q, want exec-ok", out)
		}
		n.removeTasks(c1)

		c2 := n.ID("exit7")
		if _, stderr, code := n.ctr(n.runArgs("--rm", image, c2, "sh", "-c", "exit 7")...); code != 7 {
			t.Fatalf("ctr run of a container that exits 7: exit %d (%s)", code, stderr)
		}
		c3 := n.ID("oom")
		if _, stderr, code := n.ctr(n.runArgs("--rm", "--memory-limit", "33554432", image, c3, "tail", "/dev/zero")...); code != 137 {
			t.Fatalf("ctr run of a container over its 32 MiB limit: exit %d (%s), want 137", code, stderr)
		}
		waitFor(t, "containerd to publish every task event", 10*time.Second, func() bool {
			return events.has(c2, "/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete") &&
				events.has(c3, "/tasks/oom", "/tasks/exit", "/tasks/delete")
		})
		// The CRI plugin tells the kubelet OOMKilled, from the same event.
		podID, podFile := n.runPod(pod{name: "oom", namespace: "default"})
		hog := n.startContainer(podID, podFile, container{name: "hog", script: "tail /dev/zero", memoryLimit: 32 << 20})
		var status struct {
			Status struct {
				State, Reason string
				ExitCode      int
			}
		}
		waitFor(t, "the CRI plugin to report the hog's exit", 30*time.Second, func() bool {
			out, _, _ := n.crictl("inspect", hog)
			return json.Unmarshal([]byte(out), &status) == nil && status.Status.State == "CONTAINER_EXITED"
		})
		if status.Status.Reason != "OOMKilled" || status.Status.ExitCode != 137 {
			t.Errorf("CRI status of a container over its 32 MiB limit: reason %q, exit %d; want OOMKilled, 137", status.Status.Reason, status.Status.ExitCode)
		}
		n.removePod(podID)
		events.stop()
		n.assertSettled(before)
	})
}

// eventLog is the output of `ctr events`, written to a file as it comes.
type eventLog struct {
	path string
	// stop ends `ctr events`.
	stop func()
}

// watchEvents runs `ctr events` until the test ends.
func (n *node) watchEvents() eventLog {
	n.t.Helper()
	path := filepath.Join(n.t.TempDir(), "events")
	f, err := os.Create(path)
	if err != nil {
		n.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := n.CtrCommand(ctx, "events")
	cmd.Stdout = f
	if err := cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			cmd.Wait()
			f.Close()
		})
	}
	n.t.Cleanup(stop)
	// ctr prints nothing until it is subscribed and an event comes: give it the time to
	// subscribe, as a client that watches from the start would.
	time.Sleep(500 * time.Millisecond)
	return eventLog{path, stop}
}

// has tells whether every topic was published for container id.
func (l eventLog) has(id string, topics ...string) bool {
	b, _ := os.ReadFile(l.path)
	for _, topic := range topics {
		if !slices.ContainsFunc(strings.Split(string(b), "\n"), func(line string) bool {
			return strings.Contains(line, " "+topic+" ") && strings.Contains(line, `"`+id+`"`)
		}) {
			return false
		}
	}
	return true
}

// taskPid is the pid of container id's init, as `ctr task ls` reports it.
func (n *node) taskPid(id string) int {
	n.t.Helper()
	for _, line := range strings.Split(n.mustCtr("task", "ls"), "\n") {
		var name string
		var pid int
		if _, err := fmt.Sscan(line, &name, &pid); err == nil && name == id {
			return pid
		}
	}
	n.t.Fatalf("no task %s in ctr task ls", id)
	return 0
}

// ppid is the parent of process pid.
func ppid(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// pid (comm) state ppid ...; comm may hold spaces, not ')'.
	var parent int
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	fmt.Sscan(fields[1], &parent)
	return parent
}

// cmdline is the command line of process pid, for a message.
func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ")
}
