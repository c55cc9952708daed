//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/triage-runtime/triage/e2e/harness"
)

// tieredPolicy has a runc tier and a gVisor tier; workloads asking for it, or running an
// image from the untrusted registry, go to gVisor; privileged ones are denied.
const tieredPolicy = twoTiers + `
[[rule]]
name = "deny-privileged"
action = "deny"
reason = "privileged containers are not allowed on this node"
  [rule.match]
  findings = ["privileged"]

[[rule]]
name = "untrusted-registry"
tier = "sandboxed"
reason = "images from registry.untrusted.example run in gVisor"
  [rule.match]
  images = ["registry.untrusted.example/*"]
`

const untrustedImage = "registry.untrusted.example/tool:1"

func TestRoutesByPolicy(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		n := startNode(t, v, tieredPolicy)
		n.mustCtr("images", "tag", image, untrustedImage)
		before := n.snapshot()

		out, stderr, code := n.ctr(n.runArgs("--rm", image, n.ID("plain"), "sh", "-c", "uname -r; exit 4")...)
		if code != 4 || strings.Contains(out, "gvisor") || out == "" {
			t.Fatalf("trusted workload: exit %d, kernel %q, stderr %q; want exit 4 on the host kernel", code, out, stderr)
		}
		if d := lastDecision(t, n); d["tier"] != "trusted" {
			t.Fatalf("trusted workload decision %v", d)
		}

		// The image is known only from containerd's records, which start reads while it
		// loads the policy and the spec.
		out, stderr, code = n.ctr(n.runArgs("--rm", untrustedImage, n.ID("untrusted"), "sh", "-c", "sleep 0.3; "+gvisorMark+"; exit 4")...)
		if code != 4 || !strings.Contains(out, "gVisor") {
			t.Fatalf("untrusted image: exit %d, dmesg %q, stderr %q; want exit 4 under gVisor", code, out, stderr)
		}
		if d := lastDecision(t, n); d["tier"] != "sandboxed" || d["rule"] != "untrusted-registry" {
			t.Fatalf("untrusted image decision %v, want sandboxed by rule untrusted-registry", d)
		}

		out, stderr, code = n.ctr(n.runArgs("--rm", "--annotation", "triage.io/tier=sandboxed", image, n.ID("asks"), "sh", "-c", "sleep 0.3; "+gvisorMark)...)
		if code != 0 || !strings.Contains(out, "gVisor") {
			t.Fatalf("workload asking for gVisor: exit %d, dmesg %q, stderr %q", code, out, stderr)
		}

		n.runRefused("a privileged workload", []string{`"deny-privileged"`, "privileged containers are not allowed on this node"},
			image, n.ID("priv"), "--privileged")
		// A workload of the untrusted registry asking to run in runc is refused, and
		// leaves nothing (assertSettled checks).
		n.runRefused("a downgrade request", []string{`rule "request:triage.io/tier"`, "weaker isolation"},
			untrustedImage, n.ID("down"), "--annotation", "triage.io/tier=trusted")
		n.assertSettled(before)
	})
}

func TestGVisorExecKillDelete(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		n := startNode(t, v, tieredPolicy)
		n.mustCtr("images", "tag", image, untrustedImage)
		before := n.snapshot()
		c1 := n.ID("g1")
		n.mustCtr(n.runArgs("-d", untrustedImage, c1, "sleep", "300")...)
		stdout, stderr, code := n.ctr("task", "exec", "--exec-id", "e1", c1, "sh", "-c", ""+gvisorMark+"; exit 6")
		if code != 6 || !strings.Contains(stdout, "gVisor") {
			t.Fatalf("exec under gVisor: exit %d, stdout %q, stderr %q; want exit 6 and gVisor's dmesg", code, stdout, stderr)
		}
		n.removeTasks(c1)
		n.assertSettled(before)
	})
}

// TestNewGVisorShimBehindTriage runs the newer gVisor shim, which replies to `start` in JSON.
// containerd 1.6 cannot parse that reply itself; behind Triage it works, because Triage
// parses the delegate's reply and gives containerd a plain address.
func TestNewGVisorShimBehindTriage(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		env := harness.LoadEnv(t)
		n := startNode(t, v, `default_tier = "sandboxed"
audit_log = "@AUDIT@"

[tier.sandboxed]
strength = 20
runtime = "io.containerd.runsc.v1"
shim_path = "`+env.RunscShimNew+`"
config_path = "@DIR@/runsc-new.toml"
`)
		cfg := fmt.Sprintf("binary_name = %q\nroot = %q\n[runsc_config]\n  platform = \"systrap\"\n  oci-seccomp = \"true\"\n", env.RunscNew, filepath.Join(n.Dir(), "runsc-new"))
		if err := os.WriteFile(filepath.Join(n.Dir(), "runsc-new.toml"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		// The first container makes runsc create its per-namespace "null-netns" mount, which
		// it keeps for later ones: take the baseline after it.
		n.mustCtr(n.runArgs("--rm", image, n.ID("warm"), "sleep", "0.3")...)
		before := n.snapshot()
		out, stderr, code := n.ctr(n.runArgs("--rm", image, n.ID("new"), "sh", "-c", "sleep 0.3; "+gvisorMark+"; exit 4")...)
		if code != 4 || !strings.Contains(out, "gVisor") {
			t.Fatalf("new gVisor shim behind Triage: exit %d, dmesg %q, stderr %q; want exit 4 under gVisor", code, out, stderr)
		}
		n.assertSettled(before)
	})
}

// TestGVisorStartFindsACleanBundle: Triage starts only the delegate of the tier it
// decided, so no runc shim starts for the untrusted image's gVisor workload, and runsc's
// shim finds the bundle as containerd gave it, without an ./address. (gVisor's start
// removes, as it exits, the socket named there, which is its own: when an earlier Triage
// started runc's shim on a guess, Create failed now and then with "no such file".)
// Wrappers around both shims record what each start found.
func TestGVisorStartFindsACleanBundle(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		env := harness.LoadEnv(t)
		runcShim := env.RuncShim2
		if v == harness.V16 {
			runcShim = env.RuncShim16
		}
		runcWrapper, runcFound := recordingShim(t, "containerd-shim-runc-v2", runcShim)
		runscWrapper, runscFound := recordingShim(t, "containerd-shim-runsc-v1", env.RunscShim)
		pol := tieredPolicy
		for _, w := range []struct{ runtime, shim string }{{"io.containerd.runc.v2", runcWrapper}, {"io.containerd.runsc.v1", runscWrapper}} {
			line := fmt.Sprintf("runtime = %q", w.runtime)
			pol = strings.Replace(pol, line, line+fmt.Sprintf("\nshim_path = %q", w.shim), 1)
		}
		n := startNode(t, v, pol)
		n.mustCtr("images", "tag", image, untrustedImage)
		before := n.snapshot()
		out, stderr, code := n.ctr(n.runArgs("--rm", untrustedImage, n.ID("untrusted"), "sh", "-c", "sleep 0.3; "+gvisorMark)...)
		if code != 0 || !strings.Contains(out, "gVisor") {
			t.Fatalf("untrusted image: exit %d, dmesg %q, stderr %q; want exit 0 under gVisor", code, out, stderr)
		}
		if got := readFile(t, runcFound); got != "" {
			t.Fatalf("runc's shim starts found %q, want none for a gVisor workload", got)
		}
		if got := readFile(t, runscFound); got != "none\n" {
			t.Fatalf("runsc's shim starts found %q, want one start without ./address", got)
		}
		n.assertSettled(before)
	})
}

// recordingShim is a wrapper around shim that appends to found, for each start,
// whether the bundle had an ./address already ("address" or "none").
func recordingShim(t *testing.T, name, shim string) (wrapper, found string) {
	t.Helper()
	dir := t.TempDir()
	wrapper, found = filepath.Join(dir, name), filepath.Join(dir, "found")
	script := fmt.Sprintf(`#!/bin/sh
for a; do
  if [ "$a" = start ]; then
    if [ -e address ]; then echo address >>%[1]q; else echo none >>%[1]q; fi
  fi
done
exec %[2]q "$@"
`, found, shim)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return wrapper, found
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

// TestGVisorExitCodes: short-lived gVisor containers report their real exit code, through
// Triage and through runsc's shim alone. gVisor's shim reported 128 for them: its `runsc
// wait` starts after the sandbox has exited and cannot learn the status (e2e/setup.sh
// carries the fix).
func TestGVisorExitCodes(t *testing.T) {
	const runs = 50
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		n := startNode(t, v, twoTiers)
		var wrong []string
		for i := range runs {
			want := i % 7
			args := n.runArgs("--rm", "--annotation", "triage.io/tier=sandboxed")
			how := "triage"
			if i%5 == 4 {
				// Every fifth through runsc's own shim, on the same containerd.
				args = []string{"run", "--rm", "--runtime", "io.containerd.runsc.v1", "--runtime-config-path", n.RunscConfig(),
					"--annotation", "io.kubernetes.cri.container-type=sandbox", "--annotation", "io.kubernetes.cri.sandbox-id=" + n.ID(fmt.Sprintf("code%d", i))}
				how = "runsc shim"
			}
			_, stderr, code := n.ctr(append(args, image, n.ID(fmt.Sprintf("code%d", i)), "sh", "-c", fmt.Sprintf("exit %d", want))...)
			if code != want {
				wrong = append(wrong, fmt.Sprintf("%s: exit %d, want %d (%s)", how, code, want, strings.TrimSpace(stderr)))
			}
		}
		if len(wrong) > 0 {
			t.Errorf("%d of %d short-lived gVisor containers reported a wrong exit code:\n  %s", len(wrong), runs, strings.Join(wrong, "\n  "))
		}
	})
}

// TestGVisorIDsSharingAPrefix: gVisor containers whose ids start alike (m3 and m30) each
// run, take an exec and are removed, leaving nothing. runsc took an id that starts another
// as an ambiguous abbreviation (e2e/setup.sh carries the fix).
func TestGVisorIDsSharingAPrefix(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		n := startNode(t, v, twoTiers)
		n.mustCtr(append(n.runArgs("--rm", "--annotation", "triage.io/tier=sandboxed"), image, n.ID("warm"), "sleep", "0.3")...)
		before := n.snapshot()
		m3, m30 := "m3-"+n.ID("x"), "m3-"+n.ID("x")+"0"
		for _, id := range []string{m3, m30} {
			n.mustCtr(append(n.runArgs("-d", "--annotation", "triage.io/tier=sandboxed"), image, id, "sleep", "300")...)
		}
		for _, id := range []string{m3, m30} {
			if out := n.mustCtr("task", "exec", "--exec-id", "e", id, "sh", "-c", "echo exec-ok"); !strings.Contains(out, "exec-ok") {
				t.Errorf("exec into %s: %q", id, out)
			}
		}
		n.removeTasks(m3, m30)
		n.assertSettled(before)
	})
}
