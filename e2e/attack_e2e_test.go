//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/triage-runtime/triage/e2e/harness"
)

// attackPolicy is the shipped configs/triage.toml on this node: its paths replaced by the
// node's, the test image's registry trusted (so what no rule routes runs in the hardened
// runc tier), and Kata's configuration absent (the isolated tier cannot run here, so what
// it would take is refused).
func attackPolicy(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../configs/triage.toml")
	if err != nil {
		t.Fatal(err)
	}
	return strings.NewReplacer(
		"/etc/triage/runsc.toml", "@RUNSC_CONFIG@",
		"/var/log/triage/decisions.jsonl", "@AUDIT@",
		"/opt/kata/share/defaults/kata-containers/configuration.toml", "@DIR@/no-kata.toml",
		`"registry.internal/"`, `"docker.io/library/"`,
	).Replace(string(b))
}

// auditOf returns the audit record of container id (the last one), failing the test if none.
func (n *node) auditOf(id string) map[string]any {
	n.t.Helper()
	f, err := os.Open(n.audit)
	if err != nil {
		n.t.Fatalf("audit log: %v", err)
	}
	defer f.Close()
	var rec map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r map[string]any
		if json.Unmarshal(sc.Bytes(), &r) == nil && r["id"] == id {
			rec = r
			if len(sc.Bytes()) > 16<<10 {
				n.t.Errorf("audit line of %s is %d bytes: attacker strings are not bounded", id, len(sc.Bytes()))
			}
		}
	}
	if rec == nil {
		n.t.Fatalf("no audit record for %s in %s", id, n.audit)
	}
	return rec
}

func findingIDsOf(rec map[string]any) []string {
	var ids []string
	fs, _ := rec["findings"].([]any)
	for _, f := range fs {
		if m, ok := f.(map[string]any); ok {
			ids = append(ids, fmt.Sprint(m["id"]))
		}
	}
	return ids
}

// busyboxRootfs makes a root filesystem that is no image's snapshot: the host's static
// busybox (Debian's busybox-static, installed by e2e/setup.sh) and its applets.
func busyboxRootfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("static busybox (apt-get install busybox-static): %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"sh", "cat", "ls", "echo", "true", "uname", "id", "touch", "["} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestAttacks: a workload author's attempts to reach the host through the spec, tried
// through ctr on both containerd versions against the shipped policy. Each must be refused
// (and the refusal audited with the finding that caught it) or, where the workload runs,
// observed from inside to have no host access.
func TestAttacks(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		n := startNode(t, v, attackPolicy(t))
		link := filepath.Join(t.TempDir(), "etc-link")
		if err := os.Symlink("/etc", link); err != nil {
			t.Fatal(err)
		}
		ownCgroup := ""
		if b, err := os.ReadFile("/proc/self/cgroup"); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if parts := strings.SplitN(l, ":", 3); len(parts) == 3 && (parts[1] == "pids" || parts[0] == "0") {
					ownCgroup = parts[2]
				}
			}
		}
		sandboxed := []string{"--annotation", "triage.io/tier=sandboxed"}
		refused := []struct {
			name    string
			ns      string   // containerd namespace; "" is default
			flags   []string // ctr run flags
			finding string   // the finding the audit must name
		}{
			{"host network namespace through another process", "", []string{"--with-ns", "network:/proc/2/ns/net"}, "host-namespace"},
			{"host pid namespace through the runtime", "", []string{"--with-ns", "pid:/proc/self/ns/pid"}, "host-namespace"},
			{"parent of the containerd socket", "", []string{"--mount", "type=bind,src=/run,dst=/h,options=rbind:ro"}, "sensitive-host-mount"},
			{"parent of the audit log", "", []string{"--mount", "type=bind,src=" + filepath.Dir(n.audit) + ",dst=/h,options=rbind"}, "sensitive-host-mount"},
			{"containerd's own state", "", []string{"--mount", "type=bind,src=" + n.Dir() + ",dst=/h,options=rbind:ro"}, "sensitive-host-mount"},
			{"relative source climbing to /etc", "", []string{"--mount", "type=bind,src=../../../../../../../../etc,dst=/h,options=rbind:ro"}, "sensitive-host-mount"},
			{"symlink to /etc", "", []string{"--mount", "type=bind,src=" + link + ",dst=/h,options=rbind:ro"}, "sensitive-host-mount"},
			{"overlay over /etc", "", []string{"--mount", "type=overlay,src=overlay,dst=/h,options=lowerdir=/etc"}, "sensitive-host-mount"},
			{"host cgroup", "", []string{"--cgroup", ownCgroup}, "host-cgroup"},
			{"relative mount under gVisor", "", append([]string{"--mount", "type=bind,src=../../../../../../../../etc,dst=/h,options=rbind:ro"}, sandboxed...), "sensitive-host-mount"},
			{"parent of the containerd socket under gVisor", "", append([]string{"--mount", "type=bind,src=/var,dst=/h,options=rbind:ro"}, sandboxed...), "sensitive-host-mount"},
			{"forged kube-system from ctr", "k8s.io", []string{"--annotation", "io.kubernetes.cri.sandbox-namespace=kube-system",
				"--annotation", "io.kubernetes.cri.container-type=sandbox", "--privileged", "--net-host"}, "privileged"},
		}
		for i, a := range refused {
			t.Run(a.name, func(t *testing.T) {
				n := n.in(t)
				id := n.ID(fmt.Sprintf("attack%d", i))
				args := append(n.runArgs("--rm"), a.flags...)
				args = append(args, image, id, "sh", "-c", "cat /h/shadow /h/containerd/containerd.sock; echo RAN")
				if a.ns != "" {
					args = append([]string{"-n", a.ns}, args...)
				}
				out, stderr, code := n.ctr(args...)
				defer n.ctr(append(nsArgs(a.ns), "container", "delete", id)...)
				if code == 0 || strings.Contains(out, "RAN") {
					t.Fatalf("ran (exit %d):\n%s", code, out)
				}
				if !strings.Contains(stderr, "triage") {
					t.Errorf("the error does not name Triage's refusal: %s", stderr)
				}
				rec := n.auditOf(id)
				if rec["action"] != "deny" {
					t.Errorf("audit: action %v, want deny: %v", rec["action"], rec)
				}
				if rec["rule"] == "kube-system" {
					t.Errorf("audit: decided by rule kube-system from forged CRI annotations")
				}
				if got := findingIDsOf(rec); !strings.Contains(strings.Join(got, ","), a.finding) {
					t.Errorf("audit findings %v, want %s", got, a.finding)
				}
			})
		}

		// ctr has no task update: send containerd's Tasks.Update as its client does.
		t.Run("update cannot lift the pids limit", func(t *testing.T) {
			n := n.in(t)
			id := n.ID("pids")
			n.mustCtr(n.runArgs("-d", image, id, "sleep", "300")...)
			defer n.removeTasks(id)
			conn, err := grpc.NewClient("unix://"+n.Address(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "containerd-namespace", "default"), cmdTimeout)
			defer cancel()
			// The resources as containerd's client marshals them (typeurl: JSON).
			_, err = tasksapi.NewTasksClient(conn).Update(ctx, &tasksapi.UpdateTaskRequest{ContainerID: id, Resources: &anypb.Any{
				TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources",
				Value:   []byte(`{"pids":{"limit":-1}}`),
			}})
			if err == nil || !strings.Contains(err.Error(), "pids_limit") {
				t.Errorf("update to pids.limit -1: %v; want a refusal naming pids_limit", err)
			}
			if got := n.hostPidsMax(id); got != "4096" {
				t.Errorf("pids.max = %s after the refused update, want 4096", got)
			}
		})

		t.Run("strict seccomp is applied under gVisor", func(t *testing.T) {
			n := n.in(t)
			script := `for c in "unshare -U true" "chroot / true"; do if $c 2>/dev/null; then echo "ESCAPED $c"; else echo "blocked $c"; fi; done; ` + gvisorMark + `; sleep 0.3`
			out, stderr, code := n.ctr(append(n.runArgs("--rm"), append(sandboxed, image, n.ID("strict"), "sh", "-c", script)...)...)
			if code != 0 || !strings.Contains(out, "gVisor") {
				t.Fatalf("exit %d, not under gVisor:\n%s\n%s", code, out, stderr)
			}
			if strings.Contains(out, "ESCAPED") || strings.Count(out, "blocked") != 2 {
				t.Errorf("strict-list syscalls succeed under gVisor:\n%s", out)
			}
		})

		t.Run("no image runs under gVisor", func(t *testing.T) {
			n := n.in(t)
			id := n.ID("noimage")
			out, stderr, code := n.ctr(append(n.runArgs("--rm", "--rootfs"), busyboxRootfs(t), id, "/bin/sh", "-c", gvisorMark+"; sleep 0.3")...)
			if code != 0 || !strings.Contains(out, "gVisor") {
				t.Fatalf("exit %d, want it run under gVisor:\n%s\n%s", code, out, stderr)
			}
			if rec := n.auditOf(id); rec["rule"] != "no-image" {
				t.Errorf("audit rule %v, want no-image", rec["rule"])
			}
		})

		t.Run("the host's root as root filesystem", func(t *testing.T) {
			n := n.in(t)
			id := n.ID("rootfs-host")
			out, _, code := n.ctr(append(n.runArgs("--rm", "--rootfs"), "/", id, "true")...)
			defer n.ctr("container", "delete", id)
			if code == 0 {
				t.Fatalf("ran with the host's / as its root:\n%s", out)
			}
			if rec := n.auditOf(id); rec["action"] != "deny" {
				t.Errorf("audit: %v, want a denial", rec)
			}
		})

		// A hand-written spec (ctr run --config) with an OCI hook. (Unknown fields cannot be
		// shown here: containerd decodes a spec into its own types, of the same runtime-spec
		// version as Triage's, and drops what they lack; the unit tests cover them.)
		t.Run("hooks in a hand-written spec", func(t *testing.T) {
			n := n.in(t)
			marker := filepath.Join(t.TempDir(), "hook-ran")
			var spec map[string]any
			if err := json.Unmarshal([]byte(n.mustCtr("oci", "spec")), &spec); err != nil {
				t.Fatalf("ctr oci spec: %v", err)
			}
			id := n.ID("hooks")
			spec["root"] = map[string]any{"path": busyboxRootfs(t)}
			spec["process"].(map[string]any)["args"] = []string{"true"}
			spec["linux"].(map[string]any)["cgroupsPath"] = "/default/" + id
			spec["hooks"] = map[string]any{"createRuntime": []any{map[string]any{"path": "/bin/sh", "args": []string{"sh", "-c", "touch " + marker}}}}
			b, _ := json.Marshal(spec)
			cfg := filepath.Join(t.TempDir(), "config.json")
			if err := os.WriteFile(cfg, b, 0o644); err != nil {
				t.Fatal(err)
			}
			out, stderr, code := n.ctr(n.runArgs("--rm", "--config", cfg, id)...)
			n.ctr("container", "delete", id)
			if code == 0 {
				t.Errorf("ran:\n%s", out)
			}
			if !strings.Contains(stderr, "hooks") {
				t.Errorf("the error does not name the hooks control: %s", stderr)
			}
			if got := findingIDsOf(n.auditOf(id)); !strings.Contains(strings.Join(got, ","), "hooks") {
				t.Errorf("audit findings %v, want hooks", got)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Error("the hook ran on the host")
			}
		})

		t.Run("attacker strings are bounded", func(t *testing.T) {
			n := n.in(t)
			id := n.ID("long")
			out, stderr, code := n.ctr(append(n.runArgs("--rm", "--annotation", "triage.io/tier="+strings.Repeat("x", 100<<10)), image, id, "true")...)
			n.ctr("container", "delete", id)
			if code == 0 {
				t.Fatalf("ran:\n%s", out)
			}
			if len(stderr) > 8<<10 {
				t.Errorf("the error is %d bytes", len(stderr))
			}
			n.auditOf(id) // fails on a line over 16 KiB
		})
	})
}

func nsArgs(ns string) []string {
	if ns == "" {
		return nil
	}
	return []string{"-n", ns}
}

// TestCRIAttacks: hostPath volumes that reach the host, through crictl, in a runc pod and in
// a gVisor pod: the container is refused, and the refusal audited.
func TestCRIAttacks(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		n := startCRINode(t, v, criPolicy)
		cases := []struct {
			name, namespace, hostPath string
		}{
			{"runc pod mounting /run", "default", "/run"},
			{"gVisor pod mounting /run", "tenant-a", "/run"},
			{"runc pod mounting /var/lib", "default", "/var/lib"},
			{"gVisor pod mounting containerd's folder", "tenant-b", n.Dir()},
		}
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				n := n.in(t)
				podID, podFile := n.runPod(pod{name: fmt.Sprintf("hostpath%d", i), namespace: tc.namespace})
				defer n.removePod(podID)
				c := container{name: "c", script: "ls /h; echo cri-ok; sleep 300",
					mounts: []map[string]any{{"container_path": "/h", "host_path": tc.hostPath, "readonly": true}}}
				id := n.mustCrictl("create", podID, c.file(t), podFile)
				_, stderr, code := n.crictl("start", id)
				if code == 0 {
					t.Fatalf("container with hostPath %s started", tc.hostPath)
				}
				if !strings.Contains(stderr, "sensitive host mount not allowed") {
					t.Errorf("the error does not name the refusal: %s", stderr)
				}
				rec := n.auditOf(id)
				if rec["action"] != "deny" || !strings.Contains(strings.Join(findingIDsOf(rec), ","), "sensitive-host-mount") {
					t.Errorf("audit: %v, want a denial with sensitive-host-mount", rec)
				}
				n.crictl("rm", id)
			})
		}
	})
}
