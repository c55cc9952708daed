// Package kata runs the REAL Kata shim (containerd-shim-kata-v2, built by e2e/setup.sh from
// Kata's Go module) under a private containerd of e2e/harness, for the e2e tests and the
// benchmark. No micro-VM can boot on the CI machines, so Kata's remote-hypervisor hook points
// at fakevm (e2e/kata/fakevm), a test double that runs container processes on the host in a
// chroot. What this exercises is everything between containerd and the VM: Kata's `start`,
// its task service, its config loading, sandbox and container lifecycle, I/O, exec, kill and
// delete — not Kata's isolation.
//
// Only e2e tests (build tag e2e) and programs such as the benchmark may import this package.
package kata

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/triage-runtime/triage/e2e/harness"
)

// RuntimeType is Kata's containerd runtime type.
const RuntimeType = "io.containerd.kata.v2"

// fakeVMTimeout bounds the wait for fakevm's socket.
const fakeVMTimeout = 10 * time.Second

// cgroupParents are the cgroups Kata creates above its per-sandbox ones (kata_overhead/<id>,
// vc/...). They are shared by every Kata sandbox on the host, so they are removed only when
// empty; the per-sandbox cgroups carry the container id and so the harness's suffix.
var cgroupParents = []string{"kata_overhead", "vc"}

// RemoteConfig is a Kata configuration.toml whose hypervisor is the remote-hypervisor hook
// served at socket. The rest turns off what needs a guest (networking, guest SELinux and
// seccomp) and sizes the sandbox statically, as remote hypervisors require.
func RemoteConfig(socket string) string {
	return fmt.Sprintf(`# Kata configuration for e2e tests: remote hypervisor = fakevm (a test double, no VM).
[hypervisor.remote]
remote_hypervisor_socket = %q
remote_hypervisor_timeout = 60
disable_guest_selinux = true

[agent.kata]
dial_timeout = 20

[runtime]
internetworking_model = "none"
disable_new_netns = true
disable_guest_seccomp = true
static_sandbox_resource_mgmt = true
create_container_timeout = 60
`, socket)
}

// QEMUConfig is a minimal Kata configuration.toml for a QEMU micro-VM, the kind a node
// with KVM and vhost-vsock runs. It cannot boot here; `triage doctor` must say why.
func QEMUConfig(qemu, kernel, image string) string {
	return fmt.Sprintf(`[hypervisor.qemu]
path = %q
kernel = %q
image = %q
machine_type = "q35"

[agent.kata]

[runtime]
internetworking_model = "tcfilter"
`, qemu, kernel, image)
}

// Options returns the daemon options Kata needs: a private /run (Kata hard-codes /run/vc and
// /run/kata-containers) and the Kata shim on the daemon's PATH. Merge them into the caller's.
func Options(env harness.Env, opts harness.Options) harness.Options {
	opts.PrivateRun = true
	opts.ExtraPath = append(slices.Clone(opts.ExtraPath), filepath.Dir(env.KataShim))
	return opts
}

// Node is a private containerd that can run Kata, with fakevm serving as its hypervisor.
type Node struct {
	*harness.Daemon
	// ConfigPath is the Kata configuration (RemoteConfig) for the tier's config_path or
	// ctr --runtime-config-path.
	ConfigPath string
	// Dir holds the Kata config, fakevm's sockets and its log.
	Dir string
	ctr string // the daemon version's ctr
}

// StartNode starts containerd v with opts (see Options) and a fakevm in its mount namespace,
// and writes the Kata config. Cleanups stop fakevm with the daemon and remove Kata's shared
// parent cgroups once they are empty.
func StartNode(t harness.T, env harness.Env, v harness.Version, opts harness.Options) *Node {
	t.Helper()
	env.RequireKata(t)
	// Registered first, so it runs last: after the daemon's teardown has killed every Kata
	// shim and removed the per-sandbox cgroups.
	t.Cleanup(removeCgroupParents)
	d := harness.StartContainerd(t, env, v, Options(env, opts))
	n := &Node{Daemon: d, Dir: filepath.Join(d.Dir(), "kata"), ctr: env.Ctr2}
	if v == harness.V16 {
		n.ctr = env.Ctr16
	}
	n.ConfigPath = filepath.Join(n.Dir, "configuration-remote.toml")
	if err := os.Mkdir(n.Dir, 0o755); err != nil {
		t.Fatalf("kata: %v", err)
	}
	socket := filepath.Join(n.Dir, "hv.sock")
	if err := os.WriteFile(n.ConfigPath, []byte(RemoteConfig(socket)), 0o644); err != nil {
		t.Fatalf("kata: %v", err)
	}
	if err := n.startFakeVM(env.KataFakeVM, socket); err != nil {
		t.Fatalf("kata: %v", err)
	}
	return n
}

// startFakeVM runs fakevm in the daemon's mount namespace. Its command line names the
// daemon's folder, so the harness's teardown kills it with the daemon's other processes.
func (n *Node) startFakeVM(bin, socket string) error {
	logf, err := os.Create(filepath.Join(n.Dir, "fakevm.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := n.Command(context.Background(), bin, "-socket", socket, "-dir", n.Dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start fakevm: %w", err)
	}
	go cmd.Wait() //nolint:errcheck // reaped here; killed by the harness teardown
	deadline := time.Now().Add(fakeVMTimeout)
	for {
		if fi, err := os.Stat(socket); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return nil
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("fakevm did not listen on %s within %v: %s", socket, fakeVMTimeout, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Ctr runs ctr against the daemon like Daemon.Ctr, but with a stdin that stays open until ctr
// exits. Kata's CloseIO holds the shim's service lock until the process's stdin copy ends, and
// that copy starts in Start, which needs the same lock: a CloseIO that arrives before Start (ctr
// sends one as soon as its own stdin reaches EOF) deadlocks the shim for good. Same wait as
// https://github.com/kata-containers/kata-containers/issues/10825; it happens without Triage.
func (n *Node) Ctr(ctx context.Context, args ...string) (stdout, stderr string, exit int, err error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return "", "", -1, err
	}
	defer pw.Close()
	var out, errOut bytes.Buffer
	cmd := n.Command(ctx, n.ctr, append([]string{"-a", n.Address()}, args...)...)
	cmd.Env = append(cmd.Env, "CONTAINERD_NAMESPACE=default")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pr, &out, &errOut
	err = cmd.Run()
	pr.Close()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && ctx.Err() == nil {
		return out.String(), errOut.String(), ee.ExitCode(), nil
	}
	if err != nil {
		return out.String(), errOut.String(), -1, fmt.Errorf("ctr %s: %w", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), 0, nil
}

// DirectArgs are `ctr run` arguments that run a container with Kata itself, without Triage:
// the baseline Triage->Kata is compared with.
func (n *Node) DirectArgs() []string {
	return []string{"--runtime", RuntimeType, "--runtime-config-path", n.ConfigPath}
}

// ShimSocket is the host path of the task socket Kata's shim binds for sandbox id in namespace
// ns: containerd's shim library hashes address/ns/id into /run/containerd/s, here under RunDir.
func (n *Node) ShimSocket(ns, id string) string {
	h := sha256.Sum256([]byte(filepath.Join(n.Address(), ns, id)))
	return filepath.Join(n.RunDir(), "containerd", "s", hex.EncodeToString(h[:]))
}

// Leftovers lists what Kata keeps per sandbox in the daemon's /run (/run/vc/sbs/<id>,
// /run/kata-containers/shared/sandboxes/<id>, ...): empty once every sandbox is deleted.
func (n *Node) Leftovers() []string {
	var out []string
	for _, d := range []string{"vc/sbs", "vc/vm", "kata-containers/shared/sandboxes", "kata-containers"} {
		ents, err := os.ReadDir(filepath.Join(n.RunDir(), d))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if d == "kata-containers" && e.Name() == "shared" {
				continue // listed above
			}
			out = append(out, filepath.Join("/run", d, e.Name()))
		}
	}
	return out
}

// FakeVMLog returns fakevm's log.
func (n *Node) FakeVMLog() string {
	b, err := os.ReadFile(filepath.Join(n.Dir, "fakevm.log"))
	if err != nil {
		return fmt.Sprintf("(no fakevm log: %v)", err)
	}
	return string(b)
}

// removeCgroupParents removes Kata's shared parent cgroups if they are empty (rmdir fails on a
// cgroup that still has children or processes, which then belong to someone else).
func removeCgroupParents() {
	for _, parent := range cgroupParents {
		for _, g := range []string{filepath.Join("/sys/fs/cgroup", parent), filepath.Join("/sys/fs/cgroup", "*", parent)} {
			matches, _ := filepath.Glob(g) // constant, valid patterns
			for _, m := range matches {
				// A busy or non-empty parent belongs to another daemon's sandbox too.
				_ = syscall.Rmdir(m)
			}
		}
	}
}
