//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/triage-runtime/triage/e2e/harness"
)

// nerdctlPolicy is tieredPolicy for nerdctl, which adds OCI hooks of its own (`nerdctl
// internal oci-hook`) to every container: the node's nerdctl is allowed as a hook program.
func nerdctlPolicy(nerdctl string) string {
	hooks := "  [tier.%s.hardening]\n  allowed_hooks = [\"" + nerdctl + "\"]\n"
	return strings.Replace(strings.Replace(tieredPolicy,
		"runtime = \"io.containerd.runc.v2\"\n", "runtime = \"io.containerd.runc.v2\"\n"+strings.ReplaceAll(hooks, "%s", "trusted"), 1),
		"config_path = \"@RUNSC_CONFIG@\"\n", "config_path = \"@RUNSC_CONFIG@\"\n"+strings.ReplaceAll(hooks, "%s", "sandboxed"), 1)
}

// nerdctl runs nerdctl against the node, its own state under the test's folder.
func (n *node) nerdctl(dataRoot string, args ...string) (string, string, int) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	global := []string{"--namespace", "default", "--data-root", dataRoot,
		"--cgroup-manager", "cgroupfs", "--cni-netconfpath", filepath.Join(dataRoot, "cni")}
	stdout, stderr, code, err := n.Nerdctl(ctx, append(global, args...)...)
	if err != nil {
		n.t.Fatalf("nerdctl %s: %v", strings.Join(args, " "), err)
	}
	return stdout, stderr, code
}

// TestNerdctl: nerdctl users get Triage with no runtime options: containerd's environment
// names the policy. A container runs hardened, a label asks for gVisor, --privileged is
// denied by the rule, exec --privileged is refused, and ps and rm -f work.
func TestNerdctl(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		n := startNodeEnv(t, v, nerdctlPolicy(harness.LoadEnv(t).Nerdctl), true)
		data := t.TempDir()
		run := []string{"run", "--net", "none", "--pull", "never", "--runtime", runtimeType}
		before := n.snapshot()

		name := n.ID("hard")
		if _, stderr, code := n.nerdctl(data, append(run, "-d", "--name", name, image, "sleep", "300")...); code != 0 {
			t.Fatalf("nerdctl run: exit %d: %s", code, stderr)
		}
		// nerdctl's own hooks are let through by allowed_hooks, and said so.
		if d := lastDecision(t, n); !strings.Contains(fmt.Sprint(d["controls"]), "allowed by allowed_hooks: createRuntime "+harness.LoadEnv(t).Nerdctl) {
			t.Errorf("the decision does not show nerdctl's hook allowed: %v", d["controls"])
		}
		out, stderr, code := n.nerdctl(data, "exec", name, "sh", "-c", probe)
		if code != 0 {
			t.Fatalf("nerdctl exec: exit %d: %s", code, stderr)
		}
		got := parseProbe(t, out)
		if capEff, _ := strconv.ParseUint(got["CapEff"], 16, 64); capEff != capMask(hardenedCaps) || got["Seccomp"] != "2" || got["NoNewPrivs"] != "1" {
			t.Errorf("nerdctl container: CapEff %s, Seccomp %s, NoNewPrivs %s; want the trusted tier's hardening", got["CapEff"], got["Seccomp"], got["NoNewPrivs"])
		}
		if _, stderr, code := n.nerdctl(data, "exec", "--privileged", name, "true"); code == 0 || !strings.Contains(stderr, "privileged exec not allowed") {
			t.Errorf("nerdctl exec --privileged: exit %d, %s; want it refused", code, stderr)
		}
		if out, _, _ := n.nerdctl(data, "ps"); !strings.Contains(out, name) {
			t.Errorf("nerdctl ps does not list %s:\n%s", name, out)
		}

		out, stderr, code = n.nerdctl(data, append(run, "--rm", "--label", "triage.io/tier=sandboxed", image, "sh", "-c", "sleep 0.3; "+gvisorMark)...)
		if code != 0 || !strings.Contains(out, "gVisor") {
			t.Errorf("nerdctl run --label triage.io/tier=sandboxed: exit %d, %q, %s; want it under gVisor", code, out, stderr)
		}
		if _, stderr, code := n.nerdctl(data, append(run, "--rm", "--privileged", image, "true")...); code == 0 || !strings.Contains(stderr, "deny-privileged") {
			t.Errorf("nerdctl run --privileged: exit %d, %s; want it denied by rule deny-privileged", code, stderr)
		}

		if _, stderr, code := n.nerdctl(data, "rm", "-f", name); code != 0 {
			t.Fatalf("nerdctl rm -f: exit %d: %s", code, stderr)
		}
		n.assertSettled(before)
	})
}
