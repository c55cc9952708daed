package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/triage-runtime/triage/classifier"
)

// fakeRoot makes a host tree under a temporary folder: /etc, /srv/data, a symlink
// /srv/link -> /etc, a relative symlink /srv/rel -> ../etc/ssh, and a bundle.
func fakeRoot(t testing.TB) Node {
	root := t.TempDir()
	for _, d := range []string{"etc/ssh", "srv/data", "run/containerd/io.containerd.runtime.v2.task/default/c1/rootfs"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc", filepath.Join(root, "srv/link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../etc/ssh", filepath.Join(root, "srv/rel")); err != nil {
		t.Fatal(err)
	}
	return Node{Root: root}
}

const bundle = "/run/containerd/io.containerd.runtime.v2.task/default/c1"

func TestPath(t *testing.T) {
	n := fakeRoot(t)
	cases := []struct{ name, in, want string }{
		{"absolute", "/srv/data", "/srv/data"},
		{"relative to the bundle", "rootfs", bundle + "/rootfs"},
		{"relative climbing out of the bundle", "../../../../../../etc", "/etc"},
		{"symlink", "/srv/link", "/etc"},
		{"below a symlink", "/srv/link/ssh", "/etc/ssh"},
		{"relative symlink", "/srv/rel", "/etc/ssh"},
		{"missing below a symlink", "/srv/link/nothing/here", "/etc/nothing/here"},
		{"dot dot after a symlink", "/srv/link/../data", "/srv/data"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := n.Path(bundle, tc.in); got != tc.want {
				t.Errorf("Path(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestResolveMounts(t *testing.T) {
	n := fakeRoot(t)
	s := &specs.Spec{
		Root: &specs.Root{Path: "rootfs"},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/h", Type: "bind", Source: "/srv/link", Options: []string{"rbind"}},
			{Destination: "/o", Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/srv/data:/srv/link", "upperdir=/srv/u", "workdir=/srv/w"}},
			{Destination: "/d", Type: "xfs", Source: "/dev/sdb"},
		},
	}
	r := n.Resolve(s, Workload{Bundle: bundle, ID: "c1"})
	if !r.Snapshot || r.Root != bundle+"/rootfs" {
		t.Errorf("root = %q snapshot %t, want the bundle's rootfs", r.Root, r.Snapshot)
	}
	want := [][]string{nil, {"/etc"}, {"/srv/data", "/etc", "/srv/u", "/srv/w"}, nil}
	for i, w := range want {
		if got := r.Mounts[i].HostPaths; strings.Join(got, ",") != strings.Join(w, ",") {
			t.Errorf("mount %d: host paths %q, want %q", i, got, w)
		}
	}
	if r.Mounts[3].Filesystem != "xfs" {
		t.Errorf("xfs mount: filesystem %q", r.Mounts[3].Filesystem)
	}
	ev := classifier.SensitiveMounts(s, r)
	if len(ev) != 3 {
		t.Errorf("evidence = %q, want the symlink, the overlay's lower folder and the disk", ev)
	}
}

// TestNamespaceIdentity runs on the real host: any path to the host's namespace is the
// host's, however it is spelled.
func TestNamespaceIdentity(t *testing.T) {
	cases := []struct {
		path string
		want classifier.NamespaceOrigin
	}{
		{"", classifier.NamespaceNew},
		{"/proc/2/ns/net", classifier.NamespaceHost},
		{"/proc/self/ns/net", classifier.NamespaceHost},
		{"/proc/2/../2/ns/net", classifier.NamespaceHost},
		{"/nonexistent/ns", classifier.NamespaceUnresolved},
	}
	for _, tc := range cases {
		if got := Host.namespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: tc.path}); got.Origin != tc.want {
			t.Errorf("%q: %s (%s), want %s", tc.path, got.Origin, got.Detail, tc.want)
		}
	}
}

func TestCgroupExists(t *testing.T) {
	n := fakeRoot(t)
	if err := os.MkdirAll(filepath.Join(n.Root, "sys/fs/cgroup/system.slice/containerd.service"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n.Root, "sys/fs/cgroup/system.slice/containerd.service/cgroup.procs"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{"/system.slice/containerd.service": true, "/default/c1": false, "": false, "system.slice:x:c1": false} {
		if got := n.cgroupExists(p); got != want {
			t.Errorf("cgroupExists(%q) = %t, want %t", p, got, want)
		}
	}
}

func TestRuntimeConfigs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name string
		got  bool
		want bool
	}{
		{"kata [runtime] false", KataGuestSeccomp(write("k1.toml", "[runtime]\ndisable_guest_seccomp = false\n")), true},
		{"kata [runtime] true", KataGuestSeccomp(write("k2.toml", "[runtime]\ndisable_guest_seccomp = true\n")), false},
		{"kata under [hypervisor] is not where Kata reads it", KataGuestSeccomp(write("k3.toml", "[hypervisor.qemu]\ndisable_guest_seccomp = false\n")), false},
		{"kata missing file", KataGuestSeccomp(filepath.Join(dir, "none")), false},
		{"runsc oci-seccomp", GVisorOCISeccomp(write("r1.toml", "[runsc_config]\noci-seccomp = \"true\"\nplatform = \"systrap\"\n")), true},
		{"runsc without it", GVisorOCISeccomp(write("r2.toml", "[runsc_config]\nplatform = \"systrap\"\n")), false},
		{"runsc missing file", GVisorOCISeccomp(""), false},
	}
	for _, tc := range cases {
		if tc.got != tc.want {
			t.Errorf("%s: %t, want %t", tc.name, tc.got, tc.want)
		}
	}
}

func TestSensitiveAndOwned(t *testing.T) {
	got := Sensitive("/run/triage", "/etc/triage/triage.toml", "/var/log/triage/decisions.jsonl", bundle, "/run/containerd/containerd.sock")
	want := []string{"/run/triage", "/etc/triage", "/var/log/triage", "/run/containerd"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Sensitive = %q, want %q", got, want)
	}
	mounts := []classifier.MountReach{
		{HostPaths: []string{"/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/p1/hosts"}},
		{HostPaths: []string{"/run/containerd/io.containerd.grpc.v1.cri/sandboxes/p1/shm"}},
		{HostPaths: []string{"/run/containerd/io.containerd.grpc.v1.cri/sandboxes/p2/shm"}},
	}
	owned := runtimeOwned(mounts, "p1", "uid-1")
	want = []string{"/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/p1", "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/p1", "/var/lib/kubelet/pods/uid-1"}
	if strings.Join(owned, ",") != strings.Join(want, ",") {
		t.Errorf("runtimeOwned = %q, want %q (not p2's)", owned, want)
	}
}

// FuzzPath: any path resolves to a clean absolute path, never outside the node's root.
func FuzzPath(f *testing.F) {
	n := fakeRoot(f)
	for _, s := range []string{"/srv/link", "../../..", "rootfs", "/srv/rel/../../..", "a/../../b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if strings.ContainsRune(p, 0) {
			return
		}
		got := n.Path(bundle, p)
		if !filepath.IsAbs(got) || filepath.Clean(got) != got {
			t.Fatalf("Path(%q) = %q, not clean and absolute", p, got)
		}
	})
}
