//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/triage-runtime/triage/e2e/harness"
)

// posturePolicy uses the default hardening of each tier.
const posturePolicy = twoTiers

// probe prints what the process really has, one "key: value" per line.
const probe = `grep -E '^(CapEff|CapBnd|Seccomp|NoNewPrivs):' /proc/self/status; ` +
	`echo "Kernel: $(uname -r)"; sleep 0.3`

// hardenedCaps are the capabilities containerd gives a ctr container that Triage's default
// hardening keeps: those in the Kubernetes baseline set, which excludes NET_RAW.
var hardenedCaps = map[string]int{
	"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "FSETID": 4, "KILL": 5, "SETGID": 6, "SETUID": 7,
	"SETPCAP": 8, "NET_BIND_SERVICE": 10, "SYS_CHROOT": 18, "MKNOD": 27, "AUDIT_WRITE": 29, "SETFCAP": 31,
}

func capMask(caps map[string]int) uint64 {
	var m uint64
	for _, bit := range caps {
		m |= 1 << bit
	}
	return m
}

func parseProbe(t *testing.T, out string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			got[k] = strings.TrimSpace(v)
		}
	}
	return got
}

func TestPosture(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		n := startNode(t, v, posturePolicy)
		want := capMask(hardenedCaps)

		t.Run("trusted runc", func(t *testing.T) {
			c := n.ID("posture-runc")
			n.mustCtr(n.runArgs("-d", image, c, "sleep", "300")...)
			defer n.removeTasks(c)
			out := n.mustCtr("task", "exec", "--exec-id", "probe", c, "sh", "-c", probe)
			got := parseProbe(t, out)
			if pidsMax := n.hostPidsMax(c); pidsMax != "4096" {
				t.Errorf("pids.max of the container's cgroup = %q, want the default pids_limit 4096", pidsMax)
			}
			capEff, _ := strconv.ParseUint(got["CapEff"], 16, 64)
			if capEff != want {
				t.Errorf("CapEff = %#x, want %#x (containerd's defaults in the baseline set: NET_RAW dropped)", capEff, want)
			}
			if got["Seccomp"] != "2" {
				t.Errorf("Seccomp = %q, want 2 (filter: containerd's default profile)", got["Seccomp"])
			}
			if got["NoNewPrivs"] != "1" {
				t.Errorf("NoNewPrivs = %q, want 1", got["NoNewPrivs"])
			}
			if strings.Contains(got["Kernel"], "gvisor") || got["Kernel"] == "4.4.0" {
				t.Errorf("trusted tier runs on kernel %q, want the host's", got["Kernel"])
			}
		})

		t.Run("sandboxed gVisor", func(t *testing.T) {
			out, stderr, code := n.ctr(n.runArgs("--rm", "--annotation", "triage.io/tier=sandboxed", image, n.ID("posture-gvisor"), "sh", "-c", probe+"; "+gvisorMark)...)
			if code != 0 {
				t.Fatalf("probe: exit %d: %s", code, stderr)
			}
			if !strings.Contains(out, "gVisor") {
				t.Fatalf("sandboxed workload does not run under gVisor:\n%s", out)
			}
			got := parseProbe(t, out)
			capEff, _ := strconv.ParseUint(got["CapEff"], 16, 64)
			if capEff != want {
				t.Errorf("CapEff under gVisor = %#x, want %#x", capEff, want)
			}
			// gVisor applies seccomp and noNewPrivileges in its sentry ("translated" in
			// the decision's controls); its /proc does not show them.
			t.Logf("under gVisor: Seccomp %q, NoNewPrivs %q", got["Seccomp"], got["NoNewPrivs"])
		})
	})
}

// escapes are attempts a hardened runc container must not manage; each prints "ESCAPED name"
// if it succeeds and "blocked name" otherwise.
var escapes = []struct{ name, cmd string }{
	{"mount", "mount -t tmpfs none /mnt"},
	{"unshare-user-namespace", "unshare -U -r true"},
	{"sysrq-trigger", "echo h > /proc/sysrq-trigger"},
	{"proc-sys-write", "echo 1 > /proc/sys/kernel/sysrq"},
	{"module-load", "echo x > /tmp/m.ko && insmod /tmp/m.ko"},
	{"raw-socket", "ping -c 1 -W 1 127.0.0.1"},
	{"mknod-escape-via-chroot", "chroot / true && mount --bind /proc /mnt"},
}

func escapeScript() string {
	var b strings.Builder
	for _, e := range escapes {
		b.WriteString("if (" + e.cmd + ") >/dev/null 2>&1; then echo 'ESCAPED " + e.name + "'; else echo 'blocked " + e.name + "'; fi; ")
	}
	return b.String()
}

func TestEscapeAttemptsFail(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		n := startNode(t, v, posturePolicy)
		check := func(t *testing.T, how, out string) {
			t.Helper()
			for _, e := range escapes {
				if !strings.Contains(out, "blocked "+e.name) {
					t.Errorf("%s: %s was not blocked:\n%s", how, e.name, out)
				}
			}
		}
		c := n.ID("escape")
		out, stderr, code := n.ctr(n.runArgs("-d", image, c, "sleep", "300")...)
		if code != 0 {
			t.Fatalf("run: exit %d: %s %s", code, out, stderr)
		}
		defer n.removeTasks(c)
		out, _, _ = n.ctr(n.runArgs("--rm", image, n.ID("escape-run"), "sh", "-c", escapeScript())...)
		check(t, "ctr run", out)
		out, _, _ = n.ctr("task", "exec", "--exec-id", "esc", c, "sh", "-c", escapeScript())
		check(t, "ctr task exec", out)
	})
}

// hostPidsMax reads, on the host, pids.max of the cgroup v1 pids controller the running
// task's init process is in.
func (n *node) hostPidsMax(id string) string {
	n.t.Helper()
	var pid int
	for _, l := range strings.Split(n.mustCtr("task", "ls"), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == id {
			pid, _ = strconv.Atoi(f[1])
		}
	}
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		n.t.Fatalf("task %s (pid %d): %v", id, pid, err)
	}
	for _, l := range strings.Split(string(cg), "\n") {
		if parts := strings.SplitN(l, ":", 3); len(parts) == 3 && parts[1] == "pids" {
			b, err := os.ReadFile("/sys/fs/cgroup/pids" + parts[2] + "/pids.max")
			if err != nil {
				n.t.Fatalf("pids.max of %s: %v", id, err)
			}
			return strings.TrimSpace(string(b))
		}
	}
	n.t.Fatalf("task %s (pid %d) is in no pids cgroup:\n%s", id, pid, cg)
	return ""
}
