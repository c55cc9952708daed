//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/triage-runtime/triage/e2e/harness"
	"github.com/triage-runtime/triage/e2e/kata"
	"github.com/triage-runtime/triage/shim/state"
)

// kataPolicy routes images of the untrusted registry, and workloads asking for it, to Kata;
// @KATA_CONFIG@ is the node's remote-hypervisor Kata config (fakevm, a test double: no VM).
const kataPolicy = `default_tier = "trusted"
audit_log = "@AUDIT@"

[tier.trusted]
strength = 10
runtime = "io.containerd.runc.v2"

[tier.isolated]
strength = 30
runtime = "io.containerd.kata.v2"
config_path = "@KATA_CONFIG@"

[[rule]]
name = "untrusted-registry"
tier = "isolated"
reason = "images from registry.untrusted.example run in a micro-VM"
  [rule.match]
  images = ["registry.untrusted.example/*"]
`

// kataVersions are the containerd versions Kata runs on here. The Kata shim is built on
// containerd 1.7's shim library and prints a plain address, which 1.6 and 2.x accept.
var kataVersions = []harness.Version{harness.V16, harness.V2}

// kataNode is a node whose containerd has a private /run, the Kata shim on its PATH and
// fakevm as Kata's hypervisor.
type kataNode struct {
	*node
	kata *kata.Node
}

func startKataNode(t *testing.T, v harness.Version, policy string) *kataNode {
	t.Helper()
	env := harness.LoadEnv(t)
	bin := triageBin(t)
	polDir := t.TempDir()
	n := &node{t: t, policy: filepath.Join(polDir, "policy.toml"), audit: filepath.Join(polDir, "decisions.jsonl")}
	kn := kata.StartNode(t, env, v, harness.Options{
		ExtraPath: []string{bin},
		Runtimes: []harness.Runtime{{
			Name: "triage", Type: runtimeType,
			Options:              map[string]string{"TypeUrl": "io.containerd.triage.v2.options", "ConfigPath": n.policy},
			PodAnnotations:       []string{"triage.io/*"},
			ContainerAnnotations: []string{"triage.io/*"},
		}},
	})
	n.Daemon = kn.Daemon
	policy = strings.NewReplacer("@AUDIT@", n.audit, "@RUNSC_CONFIG@", n.RunscConfig(), "@KATA_CONFIG@", kn.ConfigPath).Replace(policy)
	if err := os.WriteFile(n.policy, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	k := &kataNode{node: n, kata: kn}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("fakevm log:\n%s", kn.FakeVMLog())
		}
	})
	return k
}

// triageRunState is the shim's per-containerd state folder as the daemon sees it: under its
// private /run.
func (k *kataNode) triageRunState() string {
	return filepath.Join(k.kata.RunDir(), strings.TrimPrefix(state.ContainerdDir(k.Address()), "/run/"))
}

// assertKataSettled is assertSettled plus what Kata and Triage keep in the private /run.
func (k *kataNode) assertKataSettled(before harness.Resources, except ...string) {
	k.t.Helper()
	k.assertSettled(before, except...)
	waitFor(k.t, "Kata's sandbox state in /run to go", 15*time.Second, func() bool { return len(k.kata.Leftovers()) == 0 })
	if ents, err := os.ReadDir(k.triageRunState()); err == nil && len(ents) > 0 {
		k.t.Fatalf("triage state left behind in %s", k.triageRunState())
	}
}

// ctr runs ctr with a stdin held open (see kata.Node.Ctr: Kata deadlocks on an early CloseIO).
func (k *kataNode) ctr(args ...string) (string, string, int) {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	stdout, stderr, code, err := k.kata.Ctr(ctx, args...)
	if err != nil {
		k.t.Fatalf("ctr %s: %v (stderr: %s)", strings.Join(args, " "), err, stderr)
	}
	return stdout, stderr, code
}

// runExit7 runs the reference workload with runtime args and checks its output and exit code;
// it returns how long `ctr run` took.
func (k *kataNode) runExit7(img, id string, runtime []string, extra ...string) time.Duration {
	k.t.Helper()
	args := append(append(append([]string{"run"}, runtime...), extra...), "--rm", img, id, "sh", "-c", "echo hello-from-kata; exit 7")
	start := time.Now()
	out, stderr, code := k.ctr(args...)
	took := time.Since(start)
	if code != 7 || !strings.Contains(out, "hello-from-kata") {
		k.t.Fatalf("ctr %s: exit %d, stdout %q, stderr %q; want exit 7 and the greeting", strings.Join(args, " "), code, out, stderr)
	}
	if !strings.Contains(k.kata.FakeVMLog(), "StartContainer cid="+id) {
		k.t.Fatalf("container %s did not reach Kata's agent (fakevm):\n%s", id, k.kata.FakeVMLog())
	}
	return took
}

// kataPairs is how many interleaved Triage->Kata / Kata runs TestKataLifecycle times.
const kataPairs = 5

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2].Round(time.Millisecond)
}

func TestKataLifecycle(t *testing.T) {
	for _, v := range kataVersions {
		t.Run(v.String(), func(t *testing.T) {
			k := startKataNode(t, v, kataPolicy)
			k.mustCtr("images", "tag", image, untrustedImage)
			triage := []string{"--runtime", runtimeType, "--runtime-config-path", k.policy}
			before := k.snapshot()

			// create, start, stdout, exit code: routed by the image rule, then by request.
			took := k.runExit7(untrustedImage, k.ID("k1"), triage)
			if d := lastDecision(t, k.node); d["tier"] != "isolated" || d["rule"] != "untrusted-registry" {
				t.Fatalf("decision %v, want isolated by rule untrusted-registry", d)
			}
			t.Logf("triage -> kata: ctr run --rm ... exit 7 took %v", took)
			k.runExit7(image, k.ID("k2"), triage, "--annotation", "triage.io/tier=isolated")
			k.assertKataSettled(before)

			// exec, kill, delete of a long-running container.
			c := k.ID("k3")
			if _, stderr, code := k.ctr(append(append([]string{"run"}, triage...), "-d", untrustedImage, c, "sleep", "300")...); code != 0 {
				t.Fatalf("ctr run -d: exit %d: %s", code, stderr)
			}
			stdout, stderr, code := k.ctr("task", "exec", "--exec-id", "e1", c, "sh", "-c", "echo exec-in-kata; exit 6")
			if code != 6 || !strings.Contains(stdout, "exec-in-kata") {
				t.Fatalf("exec: exit %d, stdout %q, stderr %q; want exit 6", code, stdout, stderr)
			}
			k.mustCtr("task", "kill", "-s", "SIGKILL", c)
			waitFor(t, "the Kata container to be deletable", 20*time.Second, func() bool {
				_, _, code := k.ctr("task", "delete", c)
				return code == 0
			})
			k.mustCtr("container", "delete", c)
			k.assertKataSettled(before)

			// The same workload on Kata directly: the baseline the benchmark compares with.
			// Kata's Shutdown calls os.Exit without removing its task socket (kata-containers
			// src/runtime/pkg/containerd-shim-v2/service.go, Shutdown), so run directly it leaves
			// the socket file behind; through Triage, the router's delete removes it.
			direct := k.ID("direct")
			took = k.runExit7(image, direct, k.kata.DirectArgs())
			t.Logf("kata direct: ctr run --rm ... exit 7 took %v", took)
			k.assertKataSettled(before, k.kata.ShimSocket("default", direct))

			// A few interleaved pairs, for the figures in the log (the benchmark does it properly).
			var viaTriage, viaKata []time.Duration
			except := []string{k.kata.ShimSocket("default", direct)}
			for i := range kataPairs {
				viaTriage = append(viaTriage, k.runExit7(untrustedImage, k.ID(fmt.Sprintf("pt%d", i)), triage))
				id := k.ID(fmt.Sprintf("pk%d", i))
				viaKata = append(viaKata, k.runExit7(image, id, k.kata.DirectArgs()))
				except = append(except, k.kata.ShimSocket("default", id))
			}
			t.Logf("ctr run --rm, median of %d: triage->kata %v, kata direct %v", kataPairs, median(viaTriage), median(viaKata))
			k.assertKataSettled(before, except...)
		})
	}
}

// doctorReport is the part of `triage doctor --output json` the test reads.
type doctorReport struct {
	OK    bool `json:"ok"`
	Tiers []struct {
		Tier     string `json:"tier"`
		Status   string `json:"status"`
		Problems []struct {
			What string `json:"what"`
		} `json:"problems"`
		Notes []string `json:"notes"`
	} `json:"tiers"`
}

// doctor runs `triage doctor` on the host with the delegates on its PATH.
func (k *kataNode) doctor(policy string) (doctorReport, int, string) {
	k.t.Helper()
	env := harness.LoadEnv(k.t)
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(triageBin(k.t), "triage"), "doctor", "--config", policy, "--output", "json")
	cmd.Env = append(os.Environ(), "PATH="+strings.Join([]string{filepath.Dir(env.KataShim), filepath.Dir(env.RuncShim16), "/usr/sbin", "/usr/bin", "/sbin", "/bin"}, ":"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	code := 0
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			k.t.Fatalf("triage doctor: %v: %s", err, stderr.String())
		}
		code = ee.ExitCode()
	}
	var rep doctorReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		k.t.Fatalf("triage doctor json: %v: %s (stderr %s)", err, stdout.String(), stderr.String())
	}
	return rep, code, stdout.String() + stderr.String()
}

// TestKataDoctor: `triage doctor` finds the Kata tier runnable with the remote-hypervisor
// config (fakevm serving), and unusable with a normal QEMU config on this machine, which has
// no /dev/vhost-vsock (and no usable nested KVM).
func TestKataDoctor(t *testing.T) {
	k := startKataNode(t, harness.V16, kataPolicy)
	rep, code, out := k.doctor(k.policy)
	if code != 0 || !rep.OK {
		t.Fatalf("doctor with the remote-hypervisor config: exit %d:\n%s", code, out)
	}
	for _, tr := range rep.Tiers {
		if tr.Tier == "isolated" && (tr.Status != "ok" || !strings.Contains(strings.Join(tr.Notes, "\n"), "hypervisor remote")) {
			t.Fatalf("isolated tier with the remote hypervisor: %+v", tr)
		}
	}

	dir := t.TempDir()
	qemuCfg := filepath.Join(dir, "configuration-qemu.toml")
	cfg := kata.QEMUConfig("/opt/kata/bin/qemu-system-x86_64", "/opt/kata/share/kata-containers/vmlinux.container", "/opt/kata/share/kata-containers/kata-containers.img")
	if err := os.WriteFile(qemuCfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	pol, err := os.ReadFile(k.policy)
	if err != nil {
		t.Fatal(err)
	}
	qemuPolicy := filepath.Join(dir, "policy.toml")
	if err := os.WriteFile(qemuPolicy, bytes.ReplaceAll(pol, []byte(k.kata.ConfigPath), []byte(qemuCfg)), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, code, out = k.doctor(qemuPolicy)
	if code != 1 || rep.OK {
		t.Fatalf("doctor with a QEMU config: exit %d, want 1:\n%s", code, out)
	}
	for _, tr := range rep.Tiers {
		if tr.Tier != "isolated" {
			continue
		}
		var what []string
		for _, p := range tr.Problems {
			what = append(what, p.What)
		}
		if tr.Status != "unusable" || !strings.Contains(strings.Join(what, "\n"), "/dev/vhost-vsock") && !strings.Contains(strings.Join(what, "\n"), "/dev/kvm") {
			t.Fatalf("isolated tier with QEMU: status %s, problems %q; want unusable for lack of /dev/kvm or /dev/vhost-vsock", tr.Status, what)
		}
		t.Logf("doctor says, for QEMU: %q", what)
	}
}
