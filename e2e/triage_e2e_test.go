//go:build e2e

// Package e2e runs Triage under real containerd 1.6 (Debian) and 2.x (built from its module),
// with the real runc shim behind it. Run through `make e2e` (it builds the binaries and runs
// e2e/setup.sh first).
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/triage-runtime/triage/e2e/harness"
	"github.com/triage-runtime/triage/shim/state"
)

const (
	runtimeType = "io.containerd.triage.v2"
	image       = harness.BusyboxImage
	cmdTimeout  = 60 * time.Second
)

var versions = []harness.Version{harness.V16, harness.V2}

const gvisorMark = harness.GVisorMark

// triageBin is the folder holding the built containerd-shim-triage-v2 and triage.
func triageBin(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TRIAGE_BIN")
	if dir == "" {
		t.Fatal("TRIAGE_BIN is not set: run the e2e tests with `make e2e`, which builds the binaries first")
	}
	if _, err := os.Stat(filepath.Join(dir, "containerd-shim-triage-v2")); err != nil {
		t.Fatalf("no shim binary in TRIAGE_BIN: %v: run `make build`", err)
	}
	return dir
}

// node is a private containerd with the triage runtime registered.
type node struct {
	*harness.Daemon
	t      *testing.T
	policy string // the policy file ctr passes as runtime config
	audit  string // the audit log the policy names
}

// runcOnlyPolicy routes everything to runc.
const runcOnlyPolicy = `default_tier = "trusted"
audit_log = "@AUDIT@"

[tier.trusted]
strength = 10
runtime = "io.containerd.runc.v2"
`

// twoTiers is a policy with a runc tier (the default) and a gVisor tier, each with its
// default hardening, and no rules.
const twoTiers = `default_tier = "trusted"
audit_log = "@AUDIT@"

[tier.trusted]
strength = 10
runtime = "io.containerd.runc.v2"

[tier.sandboxed]
strength = 20
runtime = "io.containerd.runsc.v1"
config_path = "@RUNSC_CONFIG@"
`

// startNode starts containerd v with Triage on its PATH and the given policy written into
// its folder; in the policy, @AUDIT@ stands for the audit log, @RUNSC_CONFIG@ for the
// daemon's runsc config (systrap platform) and @DIR@ for the daemon's folder.
func startNode(t *testing.T, v harness.Version, policy string) *node {
	t.Helper()
	return startNodeEnv(t, v, policy, false)
}

// startNodeEnv is startNode; with policyInEnv, containerd's environment names the policy
// (TRIAGE_POLICY), for clients that pass no runtime options (nerdctl).
func startNodeEnv(t *testing.T, v harness.Version, policy string, policyInEnv bool) *node {
	t.Helper()
	return newNode(t, v, policy, triageBin(t), policyInEnv)
}

// startNodeBin is startNode with Triage's binaries taken from the folder bin rather than
// TRIAGE_BIN (another version's, say), which comes first on containerd's PATH.
func startNodeBin(t *testing.T, v harness.Version, policy, bin string) *node {
	t.Helper()
	return newNode(t, v, policy, bin, false)
}

// newNode is startNodeEnv with Triage's binaries from bin.
func newNode(t *testing.T, v harness.Version, policy, bin string, policyInEnv bool) *node {
	t.Helper()
	env := harness.LoadEnv(t)
	polDir := t.TempDir()
	n := &node{t: t, policy: filepath.Join(polDir, "policy.toml"), audit: filepath.Join(polDir, "decisions.jsonl")}
	var daemonEnv []string
	if policyInEnv {
		daemonEnv = []string{"TRIAGE_POLICY=" + n.policy}
	}
	n.Daemon = harness.StartContainerd(t, env, v, harness.Options{
		Env:       daemonEnv,
		ExtraPath: []string{bin},
		Runtimes: []harness.Runtime{{
			Name: "triage", Type: runtimeType,
			Options:              map[string]string{"TypeUrl": "io.containerd.triage.v2.options", "ConfigPath": n.policy},
			PodAnnotations:       []string{"triage.io/*"},
			ContainerAnnotations: []string{"triage.io/*"},
		}},
	})
	policy = strings.NewReplacer("@AUDIT@", n.audit, "@RUNSC_CONFIG@", n.RunscConfig(), "@DIR@", n.Dir()).Replace(policy)
	if err := os.WriteFile(n.policy, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.assertNoTriageState() })
	return n
}

// ctr runs ctr and returns stdout, stderr and the exit code; a failure to run ctr at all fails
// the test.
func (n *node) ctr(args ...string) (string, string, int) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	stdout, stderr, code, err := n.Ctr(ctx, args...)
	if err != nil {
		n.t.Fatalf("ctr %s: %v (stderr: %s)", strings.Join(args, " "), err, stderr)
	}
	return stdout, stderr, code
}

// removeTasks kills containers started with ctr run -d, waits until each task can be
// deleted, and deletes it and its container.
func (n *node) removeTasks(ids ...string) {
	n.t.Helper()
	for _, id := range ids {
		n.mustCtr("task", "kill", "-s", "SIGKILL", id)
	}
	for _, id := range ids {
		waitFor(n.t, id+" to be deletable", 20*time.Second, func() bool {
			_, _, code := n.ctr("task", "delete", id)
			return code == 0
		})
		n.mustCtr("container", "delete", id)
	}
}

// mustCtr runs ctr and fails the test unless it exits 0.
func (n *node) mustCtr(args ...string) string {
	n.t.Helper()
	stdout, stderr, code := n.ctr(args...)
	if code != 0 {
		n.t.Fatalf("ctr %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
	return stdout
}

// runArgs are `ctr run` arguments that route a container through Triage.
func (n *node) runArgs(extra ...string) []string {
	return append([]string{"run", "--runtime", runtimeType, "--runtime-config-path", n.policy}, extra...)
}

// triageStateDir is the shim's per-containerd state folder.
func (n *node) triageStateDir() string { return state.ContainerdDir(n.Address()) }

// routers lists the router daemons serving this node.
func (n *node) routers() []int { return n.processes("/triage-router") }

// processes lists the processes of binaries whose path ends in suffix that serve this node.
func (n *node) processes(suffix string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if strings.HasSuffix(args[0], suffix) && strings.Contains(string(b), n.Address()) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// assertNoTriageState fails the test if Triage left pod state or router sockets behind.
func (n *node) assertNoTriageState() {
	n.t.Helper()
	if ents, err := os.ReadDir(n.triageStateDir()); err == nil && len(ents) > 0 {
		var names []string
		filepath.WalkDir(n.triageStateDir(), func(p string, _ os.DirEntry, _ error) error {
			names = append(names, p)
			return nil
		})
		n.t.Errorf("triage state left behind: %v", names)
	}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// snapshot captures the node's resources, failing the test on error.
func (n *node) snapshot() harness.Resources {
	n.t.Helper()
	r, err := harness.Snapshot(n.Dir())
	if err != nil {
		n.t.Fatalf("snapshot: %v", err)
	}
	return r
}

// assertSettled waits until the node holds nothing more than before (containerd cleans up
// asynchronously after a task is deleted) and fails with the difference otherwise. except
// lists leftovers that are known upstream bugs, not Triage's.
func (n *node) assertSettled(before harness.Resources, except ...string) {
	n.t.Helper()
	diff, err := harness.Leaks(n.Dir(), before, func(d string) bool {
		return slices.ContainsFunc(except, func(e string) bool { return strings.HasSuffix(d, e) })
	})
	if err != nil {
		n.t.Fatalf("snapshot: %v", err)
	}
	if len(diff) > 0 {
		n.t.Fatalf("leaked:\n  %s", strings.Join(diff, "\n  "))
	}
}

func forEachVersion(t *testing.T, f func(t *testing.T, v harness.Version)) {
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) { f(t, v) })
	}
}
