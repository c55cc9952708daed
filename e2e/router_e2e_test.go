//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	apitypes "github.com/containerd/containerd/api/types"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/triage-runtime/triage/e2e/harness"
)

func TestRunReturnsStdoutAndExitCode(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		n := startNode(t, v, runcOnlyPolicy)
		stdout, stderr, code := n.ctr(n.runArgs("--rm", image, n.ID("r1"), "sh", "-c", "echo hello-from-triage; exit 3")...)
		if code != 3 || strings.TrimSpace(stdout) != "hello-from-triage" {
			t.Fatalf("ctr run through triage: exit %d, stdout %q, stderr %q; want exit 3 and the workload's stdout", code, stdout, stderr)
		}
		d := lastDecision(t, n)
		if d["tier"] != "trusted" || d["action"] != "run" || d["runtime"] != "io.containerd.runc.v2" {
			t.Fatalf("audit log decision = %v, want run in tier trusted on io.containerd.runc.v2", d)
		}
	})
}

// lastDecision reads the last line of the node's audit log.
func lastDecision(t *testing.T, n *node) map[string]any {
	t.Helper()
	f, err := os.Open(n.audit)
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	defer f.Close()
	var last string
	for s := bufio.NewScanner(f); s.Scan(); {
		last = s.Text()
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(last), &d); err != nil {
		t.Fatalf("audit log line %q: %v", last, err)
	}
	return d
}

func TestExecKillDelete(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		n := startNode(t, v, runcOnlyPolicy)
		before := n.snapshot()
		c1 := n.ID("c1")
		n.mustCtr(n.runArgs("-d", image, c1, "sleep", "300")...)
		stdout, stderr, code := n.ctr("task", "exec", "--exec-id", "e1", c1, "sh", "-c", "echo exec-ok; exit 5")
		if code != 5 || strings.TrimSpace(stdout) != "exec-ok" {
			t.Fatalf("exec: exit %d, stdout %q, stderr %q; want exit 5 and exec-ok", code, stdout, stderr)
		}
		if ps := n.mustCtr("task", "ps", c1); len(strings.Split(strings.TrimSpace(ps), "\n")) < 2 {
			t.Fatalf("task ps through the router lists no process:\n%s", ps)
		}
		n.mustCtr("task", "kill", "-s", "SIGKILL", c1)
		waitFor(t, "c1 to stop", 10*time.Second, func() bool {
			out, _, _ := n.ctr("task", "ls")
			return strings.Contains(out, "STOPPED")
		})
		n.mustCtr("task", "delete", c1)
		n.mustCtr("container", "delete", c1)
		n.assertSettled(before)
	})
}

// groupPolicy lets runc's group annotation through, which hardening strips by default.
const groupPolicy = runcOnlyPolicy + `  [tier.trusted.hardening]
  allow_annotations = ["io.containerd.runc.v2.group"]
`

func TestGroupSharesOneRouter(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		n := startNode(t, v, groupPolicy)
		before := n.snapshot()
		// ctr run --label puts the key into both the container labels and the OCI annotations.
		ids := []string{n.ID("g1"), n.ID("g2")}
		group := n.ID("grp")
		for _, id := range ids {
			n.mustCtr(n.runArgs("-d", "--label", "io.containerd.runc.v2.group="+group, image, id, "sleep", "300")...)
		}
		if r := n.routers(); len(r) != 1 {
			t.Fatalf("%d routers serve the group, want 1: %v", len(r), r)
		}
		// The router is the group's shim: it runs both containers itself.
		if s := n.processes("/containerd-shim-runc-v2"); len(s) != 0 {
			t.Fatalf("%d runc shims serve the group, want none: %v", len(s), s)
		}
		for _, id := range ids {
			if out := n.mustCtr("task", "exec", "--exec-id", "x", id, "echo", id+"-alive"); strings.TrimSpace(out) != id+"-alive" {
				t.Fatalf("exec in %s: %q", id, out)
			}
		}
		n.removeTasks(ids...)
		n.assertSettled(before)
	})
}

// A group member started just as the group's last container leaves must run: start hands it the
// router (and runc's group shim) while they may be on their way out. Each round starts b while a
// ends, at a slightly later moment each time, across the window where that used to fail (9 of 20
// such starts on containerd 2.4; with runc's own shim, whose start has the same race, 2 and 9 of
// 20 in two runs).
func TestGroupMemberJoinsAsLastLeaves(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		n := startNode(t, v, groupPolicy)
		before := n.snapshot()
		group := n.ID("grp")
		label := "io.containerd.runc.v2.group=" + group
		var failed []string
		for i := range 16 {
			a, b := n.ID(fmt.Sprintf("a%d", i)), n.ID(fmt.Sprintf("b%d", i))
			aFailed := make(chan string, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
				defer cancel()
				_, stderr, code, err := n.Ctr(ctx, n.runArgs("--rm", "--label", label, image, a, "sleep", "0.4")...)
				if err != nil || code != 0 {
					stderr = fmt.Sprintf("round %d, the leaving container: exit %d (%v): %s", i, code, err, strings.TrimSpace(stderr))
				} else {
					stderr = ""
				}
				aFailed <- stderr
			}()
			time.Sleep(time.Duration(380+10*i) * time.Millisecond)
			if _, stderr, code := n.ctr(n.runArgs("--rm", "--label", label, image, b, "true")...); code != 0 {
				failed = append(failed, fmt.Sprintf("round %d: exit %d: %s", i, code, strings.TrimSpace(stderr)))
			}
			if msg := <-aFailed; msg != "" {
				failed = append(failed, msg)
			}
		}
		if len(failed) > 0 {
			t.Fatalf("%d runs failed where a group member joined as the group's last container left:\n  %s", len(failed), strings.Join(failed, "\n  "))
		}
		n.assertSettled(before)
	})
}

func TestContainerdRestartReconnects(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		n := startNode(t, v, runcOnlyPolicy)
		before := n.snapshot()
		c1 := n.ID("c1")
		n.mustCtr(n.runArgs("-d", image, c1, "sleep", "300")...)
		n.Restart(t)
		if out := n.mustCtr("task", "exec", "--exec-id", "after-restart", c1, "echo", "still-here"); strings.TrimSpace(out) != "still-here" {
			t.Fatalf("exec after containerd restart: %q", out)
		}
		n.removeTasks(c1)
		n.assertSettled(before)
	})
}

func TestKilledRouterLeavesNothing(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		n := startNode(t, v, runcOnlyPolicy)
		before := n.snapshot()
		c1 := n.ID("c1")
		n.mustCtr(n.runArgs("-d", image, c1, "sleep", "300")...)
		routers := n.routers()
		if len(routers) != 1 {
			t.Fatalf("want one router, found %v", routers)
		}
		if err := syscall.Kill(routers[0], syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// containerd notices the dead shim, runs its delete and drops the task.
		waitFor(t, "containerd to drop the task of the killed router", 15*time.Second, func() bool {
			out, _, _ := n.ctr("task", "ls")
			return !strings.Contains(out, c1)
		})
		n.mustCtr("container", "delete", c1)
		n.assertSettled(before)
	})
}

func TestMissingDelegateFailsClearly(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		n := startNode(t, v, `default_tier = "trusted"
audit_log = "@AUDIT@"

[tier.trusted]
strength = 10
runtime = "io.containerd.nosuch.v1"
`)
		before := n.snapshot()
		n.runRefused("a missing delegate", []string{"containerd-shim-nosuch-v1", `tier "trusted"`}, image, n.ID("c1"))
		n.assertSettled(before)
	})
}

func TestBrokenPolicyFailsClearly(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		n := startNode(t, v, `default_tier = "trusted"
audit_log = "@AUDIT@"
[tier.trusted]
strength = 10
runtime = "io.containerd.runc.v2"
no_such_key = true
`)
		before := n.snapshot()
		n.runRefused("a broken policy", []string{n.policy + ":6", "no_such_key"}, image, n.ID("c1"))
		n.assertSettled(before)
	})
}

func TestCyclesLeakNothing(t *testing.T) {
	const cycles = 50
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		n := startNode(t, v, runcOnlyPolicy)
		// One cycle first, so lazily created state (fifo dirs, cgroup parents) is in the baseline.
		n.mustCtr(n.runArgs("--rm", image, n.ID("warm"), "true")...)
		before := n.snapshot()
		for i := range cycles {
			id := n.ID(fmt.Sprintf("cycle%d", i))
			n.mustCtr(n.runArgs("-d", image, id, "true")...)
			waitFor(t, id+" to exit", 10*time.Second, func() bool {
				out, _, _ := n.ctr("task", "ls")
				return strings.Contains(out, "STOPPED") || !strings.Contains(out, id)
			})
			n.mustCtr("task", "delete", id)
			n.mustCtr("container", "delete", id)
		}
		n.assertSettled(before)
		if after := n.snapshot(); len(after.ContainerdFDs) > len(before.ContainerdFDs)+5 {
			t.Fatalf("containerd holds %d fds after %d cycles, %d before", len(after.ContainerdFDs), cycles, len(before.ContainerdFDs))
		}
	})
}

func TestTierThatCannotRun(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		env := harness.LoadEnv(t)
		env.RequireKata(t)
		n := startNode(t, v, `default_tier = "fast"
audit_log = "@AUDIT@"

# A tier whose delegate is not installed, with a stronger fallback.
[tier.fast]
strength = 10
runtime = "io.containerd.nosuch.v1"
fallback = "sandboxed"

[tier.sandboxed]
strength = 20
runtime = "io.containerd.runsc.v1"
config_path = "@RUNSC_CONFIG@"

# Kata with a local QEMU VM: this machine has no /dev/vhost-vsock.
[tier.isolated]
strength = 30
runtime = "io.containerd.kata.v2"
shim_path = "`+env.KataShim+`"
config_path = "@DIR@/kata-qemu.toml"
`)
		if err := os.WriteFile(n.Dir()+"/kata-qemu.toml", []byte("[hypervisor.qemu]\npath = \"/usr/bin/qemu-system-x86_64\"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		before := n.snapshot()

		out, stderr, code := n.ctr(n.runArgs("--rm", image, n.ID("fb"), "sh", "-c", "sleep 0.3; "+gvisorMark)...)
		if code != 0 || !strings.Contains(out, "gVisor") {
			t.Fatalf("tier fast falls back to gVisor: exit %d, out %q, stderr %q", code, out, stderr)
		}
		if d := lastDecision(t, n); d["tier"] != "sandboxed" || !strings.Contains(d["reason"].(string), `runs in its fallback "sandboxed"`) {
			t.Fatalf("decision %v: want tier sandboxed, the fallback named in the reason", d)
		}

		n.runRefused("a Kata tier without VM devices", []string{`tier "isolated" cannot run on this node`, "/dev/"},
			image, n.ID("kata"), "--annotation", "triage.io/tier=isolated")
		n.assertSettled(before)
	})
}

// TestInfoReportsFeatures: containerd 2.x's CRI asks `-info` for the runtime's OCI features
// and promises the kubelet only those (recursive read-only mounts, user namespaces). A policy
// whose tiers all run on runc reports runc's; a mixed one reports none.
func TestInfoReportsFeatures(t *testing.T) {
	env := harness.LoadEnv(t)
	bin := triageBin(t)
	dir := t.TempDir()
	info := func(policy string) *apitypes.RuntimeInfo {
		t.Helper()
		path := filepath.Join(dir, "p.toml")
		policy = strings.NewReplacer("@AUDIT@", filepath.Join(dir, "a.jsonl"), "@RUNSC_CONFIG@", "/nonexistent/runsc.toml").Replace(policy)
		if err := os.WriteFile(path, []byte(policy), 0o644); err != nil {
			t.Fatal(err)
		}
		opts, _ := anypb.New(&runtimeoptions.Options{ConfigPath: path})
		in, _ := proto.Marshal(opts)
		cmd := exec.Command(filepath.Join(bin, "containerd-shim-triage-v2"), "-info")
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(env.RuncShim2)+":/usr/sbin:/usr/bin:/sbin:/bin")
		cmd.Stdin = bytes.NewReader(in)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("-info: %v", err)
		}
		var ri apitypes.RuntimeInfo
		if err := proto.Unmarshal(out, &ri); err != nil {
			t.Fatal(err)
		}
		return &ri
	}
	if ri := info(runcOnlyPolicy); ri.GetName() != "io.containerd.triage.v2" || !strings.Contains(string(ri.GetFeatures().GetValue()), "mountOptions") {
		t.Fatalf("runc-only policy: -info = %v, want triage's name and runc's OCI features", ri)
	}
	if ri := info(tieredPolicy); ri.GetFeatures() != nil {
		t.Fatalf("runc + gVisor policy: -info reports features %s, want none", ri.GetFeatures().GetValue())
	}
}

// runRefused runs `ctr run --rm FLAGS img id true` through Triage, which must fail with an
// error that contains each of want; what names the case. It removes the container record the
// failed run leaves.
func (n *node) runRefused(what string, want []string, img, id string, flags ...string) {
	n.t.Helper()
	args := append(append([]string{"--rm"}, flags...), img, id, "true")
	_, stderr, code := n.ctr(n.runArgs(args...)...)
	for _, w := range want {
		if code == 0 || !strings.Contains(stderr, w) {
			n.t.Fatalf("ctr run with %s: exit %d, stderr %q; want a failure naming %q", what, code, stderr, w)
		}
	}
	n.t.Logf("ctr says: %s", stderr)
	n.ctr("container", "delete", id)
}

// A runc pod's shim must come up as runc's own would: runc's shim sets its OOM score to
// its start's parent's (containerd's) plus one, and so does Triage's pod shim, from its
// parent, Triage's start (a child of containerd, like runc's own start).
func TestPodShimOOMScoreAsWithoutTriage(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		n := startNode(t, v, runcOnlyPolicy)
		// A score of containerd's own that init (the parent of an orphan) does not have.
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", n.PID()), []byte("500"), 0); err != nil {
			t.Fatal(err)
		}
		before := n.snapshot()
		routed, direct := n.ID("routed"), n.ID("direct")
		n.mustCtr(n.runArgs("-d", image, routed, "sleep", "300")...)
		n.mustCtr("run", "-d", "--runtime", "io.containerd.runc.v2", image, direct, "sleep", "300")
		score := func(shim, id string) string {
			t.Helper()
			for _, pid := range n.processes(shim) {
				cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
				if !bytes.Contains(cmdline, []byte("\x00"+id+"\x00")) {
					continue
				}
				b, err := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid))
				if err != nil {
					t.Fatal(err)
				}
				return strings.TrimSpace(string(b))
			}
			t.Fatalf("no %s serves %s", shim, id)
			return ""
		}
		if got, want := score("/triage-router", routed), score("/containerd-shim-runc-v2", direct); got != want || want != "501" {
			t.Errorf("Triage's pod shim has oom_score_adj %s, runc's shim %s (want containerd's 500 + 1 for both)", got, want)
		}
		n.removeTasks(routed, direct)
		n.assertSettled(before)
	})
}

// TestKilledGVisorRouterThenQuickRemoval: a gVisor pod's router is killed and, as a kubelet
// reacting to the exit would, the task is killed and removed at once: no gVisor shim,
// sandbox or state outlives it, whatever the timing.
func TestKilledGVisorRouterThenQuickRemoval(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		n := startNode(t, v, twoTiers)
		// The first gVisor container makes runsc's per-namespace "null-netns" mount, which it
		// keeps: take the baseline after it.
		n.mustCtr(append(n.runArgs("--rm", "--annotation", "triage.io/tier=sandboxed"), image, n.ID("warm"), "sleep", "0.3")...)
		before := n.snapshot()
		for round, follow := range [][]string{{"task", "kill", "-s", "SIGKILL"}, {"task", "delete", "-f"}, {"task", "exec", "--exec-id", "x"}} {
			c := n.ID(fmt.Sprintf("q%d", round))
			n.mustCtr(append(n.runArgs("-d", "--annotation", "triage.io/tier=sandboxed"), image, c, "sleep", "300")...)
			routers := n.routers()
			if len(routers) != 1 {
				t.Fatalf("want one router, found %v", routers)
			}
			if err := syscall.Kill(routers[0], syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			args := append(append([]string{}, follow...), c)
			if follow[1] == "exec" {
				args = append(args, "true")
			}
			n.ctr(args...) // may fail: the task is going
			waitFor(t, "containerd to drop the task of the killed router", 15*time.Second, func() bool {
				n.ctr("task", "delete", "-f", c)
				out, _, _ := n.ctr("task", "ls")
				return !strings.Contains(out, c)
			})
			n.mustCtr("container", "delete", c)
			n.assertSettled(before)
		}
	})
}
