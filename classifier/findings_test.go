package classifier

import (
	"go/build"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/triage-runtime/triage/policy"
)

// safeSpec returns a spec with no findings; each case changes one thing.
func safeSpec() *specs.Spec {
	caps := []string{"CAP_NET_BIND_SERVICE"}
	return &specs.Spec{
		Process: &specs.Process{
			User:            specs.User{UID: 1000, GID: 1000},
			Capabilities:    &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps},
			ApparmorProfile: "cri-containerd.apparmor.d",
			NoNewPrivileges: true,
		},
		Root: &specs.Root{Path: "rootfs", Readonly: true},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"ro"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.MountNamespace}, {Type: specs.NetworkNamespace},
			},
			Seccomp:       &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActAllow}}},
			Resources:     &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}},
			MaskedPaths:   slices.Clone(maskedProcPaths),
			ReadonlyPaths: slices.Clone(readonlyProcPaths),
		},
	}
}

func i64(v int64) *int64 { return &v }

func withNamespaces(s *specs.Spec, ns ...specs.LinuxNamespace) {
	s.Linux.Namespaces = ns
}

func bind(src string) specs.Mount {
	return specs.Mount{Destination: "/host", Type: "bind", Source: src, Options: []string{"rbind", "rw"}}
}

// TestChecks runs each check on the safe spec changed in one way. want is the evidence
// substring; "" means the check must not fire.
func TestChecks(t *testing.T) {
	cases := []struct {
		name   string
		check  func(*Facts) string
		modify func(*specs.Spec)
		want   string
	}{
		{"privileged/all capabilities", onSpec(checkPrivileged), func(s *specs.Spec) {
			s.Process.Capabilities.Bounding = policy.CapabilityNames()
		}, "every capability"},
		{"privileged/unconfined seccomp and devices", onSpec(checkPrivileged), func(s *specs.Spec) {
			s.Linux.Seccomp = nil
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Access: "rwm"})
		}, "no seccomp profile and device cgroup allows a *:* rwm"},
		{"privileged/seccomp alone is not", onSpec(checkPrivileged), func(s *specs.Spec) { s.Linux.Seccomp = nil }, ""},
		{"privileged/one capability short", onSpec(checkPrivileged), func(s *specs.Spec) {
			s.Process.Capabilities.Bounding = slices.DeleteFunc(policy.CapabilityNames(), func(c string) bool { return c == "CAP_SYS_ADMIN" })
		}, ""},
		{"host-namespace/no network namespace", checkHostNamespace, func(s *specs.Spec) {
			withNamespaces(s, specs.LinuxNamespace{Type: specs.PIDNamespace}, specs.LinuxNamespace{Type: specs.IPCNamespace}, specs.LinuxNamespace{Type: specs.UTSNamespace})
		}, "no network namespace"},
		{"host-namespace/pid of host init", checkHostNamespace, func(s *specs.Spec) { s.Linux.Namespaces[0].Path = "/proc/1/ns/pid" }, "pid namespace joins /proc/1/ns/pid"},
		{"host-namespace/ipc via /proc/self", checkHostNamespace, func(s *specs.Spec) { s.Linux.Namespaces[1].Path = "/proc/self/ns/ipc" }, "ipc namespace joins"},
		{"host-namespace/pod sandbox namespaces are fine", checkHostNamespace, func(s *specs.Spec) {
			s.Linux.Namespaces[1].Path = "/proc/4242/ns/ipc"
			s.Linux.Namespaces[4].Path = "/var/run/netns/cni-1"
		}, ""},
		{"host-namespace/no linux section", checkHostNamespace, func(s *specs.Spec) { s.Linux = nil }, "no network namespace"},
		{"sensitive-host-mount/docker.sock", checkSensitiveHostMount, func(s *specs.Spec) { s.Mounts = append(s.Mounts, bind("/var/run/docker.sock")) }, "host /var/run/docker.sock"},
		{"sensitive-host-mount/containerd socket", checkSensitiveHostMount, func(s *specs.Spec) { s.Mounts = append(s.Mounts, bind("/run/containerd/containerd.sock")) }, "containerd.sock"},
		{"sensitive-host-mount/root", checkSensitiveHostMount, func(s *specs.Spec) { s.Mounts = append(s.Mounts, bind("/")) }, "host / mounted"},
		{"sensitive-host-mount/etc subpath", checkSensitiveHostMount, func(s *specs.Spec) { s.Mounts = append(s.Mounts, bind("/etc/ssh")) }, "/etc/ssh"},
		{"sensitive-host-mount/trailing slash", checkSensitiveHostMount, func(s *specs.Spec) { s.Mounts = append(s.Mounts, bind("/var/lib/kubelet/")) }, "/var/lib/kubelet"},
		{"sensitive-host-mount/lib/modules", checkSensitiveHostMount, func(s *specs.Spec) { s.Mounts = append(s.Mounts, bind("/lib/modules/6.1.0")) }, "/lib/modules"},
		{"sensitive-host-mount/bind option without type", checkSensitiveHostMount, func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/h", Source: "/home/alice", Options: []string{"bind"}})
		}, "/home/alice"},
		{"sensitive-host-mount/escape from sandbox dir", checkSensitiveHostMount, func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, bind("/var/lib/kubelet/pods/../../../../etc"))
		}, "mounted at /host"},
		{"sensitive-host-mount/etcd is not etc", checkSensitiveHostMount, func(s *specs.Spec) { s.Mounts = append(s.Mounts, bind("/etcd/data")) }, ""},
		// Without the pod's identity (Reach.RuntimeOwned), another pod's files are another
		// pod's: see TestReachJudged for the pod's own.
		{"sensitive-host-mount/kubelet volume of some pod", checkSensitiveHostMount, func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, bind("/var/lib/kubelet/pods/uid/volumes/kubernetes.io~empty-dir/cache"))
		}, "/var/lib/kubelet/pods/uid"},
		{"sensitive-host-mount/cri files of some sandbox", checkSensitiveHostMount, func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, bind("/run/containerd/io.containerd.grpc.v1.cri/sandboxes/abc/shm"))
		}, "sandboxes/abc/shm"},
		{"sensitive-host-mount/proc filesystem is not a bind", checkSensitiveHostMount, func(s *specs.Spec) {}, ""},
		{"sensitive-host-mount/parent of the containerd socket", checkSensitiveHostMount, func(s *specs.Spec) { s.Mounts = append(s.Mounts, bind("/run")) }, "host /run mounted"},
		{"sensitive-host-mount/parent of kubelet state", checkSensitiveHostMount, func(s *specs.Spec) { s.Mounts = append(s.Mounts, bind("/var/lib")) }, "host /var/lib"},
		{"sensitive-host-mount/parent of the audit log", checkSensitiveHostMount, func(s *specs.Spec) { s.Mounts = append(s.Mounts, bind("/var/log")) }, "host /var/log"},
		{"sensitive-host-mount/triage state", checkSensitiveHostMount, func(s *specs.Spec) { s.Mounts = append(s.Mounts, bind("/run/triage/s")) }, "/run/triage/s"},
		{"sensitive-host-mount/relative source climbs to etc", checkSensitiveHostMount, func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, bind("../../../../../../etc"))
		}, `host /etc mounted at /host (spec says "../../../../../../etc")`},
		{"sensitive-host-mount/overlay lowerdir", checkSensitiveHostMount, func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/o", Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/tmp/a:/etc", "upperdir=/tmp/u", "workdir=/tmp/w"}})
		}, "host /etc mounted at /o"},
		{"sensitive-host-mount/overlay of plain folders", checkSensitiveHostMount, func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/o", Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/srv/a", "upperdir=/srv/u", "workdir=/srv/w"}})
		}, ""},
		{"sensitive-host-mount/disk filesystem", checkSensitiveHostMount, func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/d", Type: "ext4", Source: "/dev/sda1"})
		}, `ext4 filesystem from "/dev/sda1"`},
		{"sensitive-host-mount/binfmt_misc", checkSensitiveHostMount, func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/b", Type: "binfmt_misc", Source: "binfmt_misc"})
		}, "binfmt_misc filesystem"},
		{"sensitive-host-mount/shared propagation", checkSensitiveHostMount, func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/d", Type: "bind", Source: "/srv/data", Options: []string{"rbind", "rshared"}})
		}, "propagates mounts back to the host"},
		{"sensitive-host-mount/rootfs propagation", checkSensitiveHostMount, func(s *specs.Spec) { s.Linux.RootfsPropagation = "shared" }, "rootfsPropagation"},
		{"sensitive-host-mount/root filesystem is the host's", checkSensitiveHostMount, func(s *specs.Spec) { s.Root.Path = "/" }, "root filesystem is host /"},
		{"sensitive-host-mount/plain host folder", checkSensitiveHostMount, func(s *specs.Spec) { s.Mounts = append(s.Mounts, bind("/srv/data")) }, ""},
		{"host-namespace/no mount namespace", checkHostNamespace, func(s *specs.Spec) {
			s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.MountNamespace })
		}, "no mount namespace"},
		{"hooks/prestart", onSpec(checkHooks), func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{Prestart: []specs.Hook{{Path: "/bin/sh"}}, Poststop: []specs.Hook{{Path: "/usr/bin/x"}}}
		}, "prestart /bin/sh, poststop /usr/bin/x"},
		{"hooks/empty lists", onSpec(checkHooks), func(s *specs.Spec) { s.Hooks = &specs.Hooks{} }, ""},
		{"host-cgroup/another cgroup", checkHostCgroup, func(s *specs.Spec) { s.Linux.CgroupsPath = "/system.slice/containerd.service" }, "does not end with the container's id"},
		{"host-cgroup/climbs", checkHostCgroup, func(s *specs.Spec) { s.Linux.CgroupsPath = "/default/../c1" }, "climbs"},
		{"host-cgroup/systemd name", checkHostCgroup, func(s *specs.Spec) { s.Linux.CgroupsPath = "system.slice:triage:other" }, "does not end"},
		{"host-cgroup/ctr default", checkHostCgroup, func(s *specs.Spec) { s.Linux.CgroupsPath = "/default/c1" }, ""},
		{"host-cgroup/systemd of its own", checkHostCgroup, func(s *specs.Spec) { s.Linux.CgroupsPath = "kubepods.slice:cri-containerd:c1" }, ""},
		{"unmanaged-rootfs/root elsewhere", checkUnmanagedRootfs, func(s *specs.Spec) { s.Root.Path = "/srv/root" }, "root filesystem is host /srv/root"},
		{"host-device/network device", onSpec(HostDeviceAccess), func(s *specs.Spec) {
			s.Linux.NetDevices = map[string]specs.LinuxNetDevice{"eth1": {}}
		}, "host network device eth1"},
		{"dangerous-capability/sys_admin in bounding", onSpec(checkDangerousCapability), func(s *specs.Spec) {
			s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN")
		}, "CAP_SYS_ADMIN"},
		{"dangerous-capability/net_admin in permitted only", onSpec(checkDangerousCapability), func(s *specs.Spec) {
			s.Process.Capabilities.Permitted = append(s.Process.Capabilities.Permitted, "CAP_NET_ADMIN")
		}, "CAP_NET_ADMIN"},
		{"dangerous-capability/containerd's defaults are baseline", onSpec(checkDangerousCapability), func(s *specs.Spec) {
			s.Process.Capabilities.Bounding = []string{"CAP_NET_RAW", "CAP_MKNOD", "CAP_SETFCAP", "CAP_CHOWN"}
		}, ""},
		{"non-baseline-capability/beyond the PSS baseline", onSpec(checkNonBaselineCapability), func(s *specs.Spec) {
			s.Process.Capabilities.Bounding = []string{"CAP_NET_RAW", "CAP_IPC_LOCK", "sys_nice", "CAP_SYS_ADMIN"}
		}, "CAP_IPC_LOCK, CAP_SYS_ADMIN, CAP_SYS_NICE"},
		{"non-baseline-capability/baseline only", onSpec(checkNonBaselineCapability), func(s *specs.Spec) {
			s.Process.Capabilities.Bounding = policy.BaselineCapabilities()
		}, ""},
		{"dangerous-capability/name without prefix", onSpec(checkDangerousCapability), func(s *specs.Spec) {
			s.Process.Capabilities.Effective = append(s.Process.Capabilities.Effective, "bpf")
		}, "CAP_BPF"},
		{"dangerous-capability/every listed one reported in order", onSpec(checkDangerousCapability), func(s *specs.Spec) {
			s.Process.Capabilities.Bounding = []string{"CAP_SYS_TIME", "CAP_SYS_ADMIN"}
		}, "CAP_SYS_ADMIN, CAP_SYS_TIME"},
		{"dangerous-capability/no capabilities", onSpec(checkDangerousCapability), func(s *specs.Spec) { s.Process.Capabilities = nil }, ""},
		{"run-as-root/uid 0", onSpec(checkRunAsRoot), func(s *specs.Spec) { s.Process.User.UID = 0 }, "uid 0 without a user namespace"},
		{"run-as-root/remapped", onSpec(checkRunAsRoot), func(s *specs.Spec) {
			s.Process.User.UID = 0
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		}, ""},
		{"run-as-root/identity mapping", onSpec(checkRunAsRoot), func(s *specs.Spec) {
			s.Process.User.UID = 0
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 0, Size: 65536}}
		}, "mapped to host uid 0"},
		{"run-as-root/user namespace without mappings", onSpec(checkRunAsRoot), func(s *specs.Spec) {
			s.Process.User.UID = 0
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		}, "mapped to host uid 0"},
		{"seccomp-unconfined/none", onSpec(checkSeccompUnconfined), func(s *specs.Spec) { s.Linux.Seccomp = nil }, "no seccomp profile"},
		{"seccomp-unconfined/allow everything", onSpec(checkSeccompUnconfined), func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
		}, "allows every syscall"},
		{"seccomp-unconfined/allow by default with a block list", onSpec(checkSeccompUnconfined), func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"keyctl"}, Action: specs.ActErrno}}}
		}, ""},
		{"apparmor-unconfined/empty", onSpec(checkApparmorUnconfined), func(s *specs.Spec) { s.Process.ApparmorProfile = "" }, "no AppArmor profile"},
		{"apparmor-unconfined/unconfined", onSpec(checkApparmorUnconfined), func(s *specs.Spec) { s.Process.ApparmorProfile = "unconfined" }, `"unconfined"`},
		{"privilege-escalation/no_new_privs false", onSpec(checkPrivilegeEscalation), func(s *specs.Spec) { s.Process.NoNewPrivileges = false }, "noNewPrivileges is false"},
		{"writable-rootfs/writable", onSpec(checkWritableRootfs), func(s *specs.Spec) { s.Root.Readonly = false }, "writable"},
		{"writable-rootfs/no root", onSpec(checkWritableRootfs), func(s *specs.Spec) { s.Root = nil }, "writable"},
		{"unsafe-sysctl/kernel.msgmax", onSpec(checkUnsafeSysctl), func(s *specs.Spec) {
			s.Linux.Sysctl = map[string]string{"kernel.msgmax": "1", "net.ipv4.tcp_syncookies": "1"}
		}, "kernel.msgmax=1"},
		{"unsafe-sysctl/slash notation of a safe one", onSpec(checkUnsafeSysctl), func(s *specs.Spec) {
			s.Linux.Sysctl = map[string]string{"net/ipv4/ip_local_port_range": "1024 65000"}
		}, ""},
		{"unsafe-sysctl/all safe", onSpec(checkUnsafeSysctl), func(s *specs.Spec) {
			s.Linux.Sysctl = map[string]string{}
			for _, k := range safeSysctls {
				s.Linux.Sysctl[k] = "1"
			}
		}, ""},
		{"host-device/device node", onSpec(HostDeviceAccess), func(s *specs.Spec) {
			s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/kvm", Type: "c", Major: 10, Minor: 232}}
		}, "device /dev/kvm (c 10:232)"},
		{"host-device/cgroup allows all", onSpec(HostDeviceAccess), func(s *specs.Spec) {
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: "a", Access: "rwm"})
		}, "allows a *:* rwm"},
		{"host-device/cgroup allows a block device", onSpec(HostDeviceAccess), func(s *specs.Spec) {
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: "b", Major: i64(8), Minor: i64(0), Access: "rw"})
		}, "allows b 8:0 rw"},
		{"host-device/default devices", onSpec(HostDeviceAccess), func(s *specs.Spec) {
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices,
				specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rwm"},
				specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(136), Access: "rwm"},
				specs.LinuxDeviceCgroup{Allow: true, Type: "c", Access: "m"})
		}, ""},
		{"unmasked-proc/no masked paths", onSpec(checkUnmaskedProc), func(s *specs.Spec) { s.Linux.MaskedPaths = nil }, "/proc/kcore not masked"},
		{"unmasked-proc/proc/sys writable", onSpec(checkUnmaskedProc), func(s *specs.Spec) { s.Linux.ReadonlyPaths = []string{"/proc/sysrq-trigger"} }, "/proc/sys not read-only"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := safeSpec()
			if ev := tc.check(&Facts{ID: "c1", Image: "registry.internal/app:1", Spec: s}); ev != "" {
				t.Fatalf("fires on the safe spec: %q", ev)
			}
			tc.modify(s)
			got := tc.check(&Facts{ID: "c1", Image: "registry.internal/app:1", Spec: s})
			switch {
			case tc.want == "" && got != "":
				t.Errorf("evidence = %q, want no finding", got)
			case tc.want != "" && !strings.Contains(got, tc.want):
				t.Errorf("evidence = %q, want it to contain %q", got, tc.want)
			}
		})
	}
}

func TestFindingsSafeSpecHasNone(t *testing.T) {
	if got := Findings(Facts{ID: "c1", Image: "registry.internal/app:1", Spec: safeSpec()}); len(got) != 0 {
		t.Errorf("Findings = %v, want none", got)
	}
}

func TestFindingsInvalidSpec(t *testing.T) {
	for name, s := range map[string]*specs.Spec{"nil spec": nil, "no process": {Linux: &specs.Linux{}}} {
		got := Findings(Facts{Spec: s})
		if len(got) != 1 || got[0].ID != policy.FindingInvalidSpec {
			t.Errorf("%s: Findings = %v, want only invalid-spec", name, got)
		}
	}
}

// TestFindingVocabulary keeps the checks and the ids rules may name in step.
func TestFindingVocabulary(t *testing.T) {
	ids := []string{policy.FindingInvalidSpec}
	for _, c := range checks {
		ids = append(ids, c.id)
	}
	if want := policy.FindingIDs(); !slices.Equal(ids, want) {
		t.Errorf("check ids = %q, policy.FindingIDs() = %q", ids, want)
	}
}

// TestPure keeps the classifier free of I/O and runtime dependencies.
func TestPure(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if imp == "os" || imp == "os/exec" || imp == "net" || imp == "log" || strings.HasPrefix(imp, "net/") ||
			strings.Contains(imp, "containerd") || strings.Contains(imp, "ttrpc") || strings.Contains(imp, "logrus") {
			t.Errorf("classifier imports %s", imp)
		}
	}
}

// TestReachJudged: checks judge what the node resolved, not the spec's spelling.
func TestReachJudged(t *testing.T) {
	cases := []struct {
		name   string
		modify func(*specs.Spec, *Reach)
		id     string
		want   string
	}{
		{"namespace by identity", func(s *specs.Spec, r *Reach) {
			s.Linux.Namespaces[4].Path = "/proc/2/ns/net"
			r.Namespaces[4] = NamespaceReach{Origin: NamespaceHost, Detail: "the same namespace as /proc/1/ns/net"}
		}, policy.FindingHostNamespace, "network namespace joins /proc/2/ns/net (the same namespace as /proc/1/ns/net)"},
		{"unresolved namespace", func(s *specs.Spec, r *Reach) {
			s.Linux.Namespaces[4].Path = "/gone"
			r.Namespaces[4] = NamespaceReach{Origin: NamespaceUnresolved}
		}, policy.FindingHostNamespace, "network namespace joins /gone"},
		{"symlink to etc", func(s *specs.Spec, r *Reach) {
			s.Mounts = append(s.Mounts, bind("/srv/link"))
			r.Mounts = append(r.Mounts, MountReach{HostPaths: []string{"/etc"}})
		}, policy.FindingSensitiveHostMount, `host /etc mounted at /host (spec says "/srv/link")`},
		{"node's own folder", func(s *specs.Spec, r *Reach) {
			s.Mounts = append(s.Mounts, bind("/tmp"))
			r.Mounts = append(r.Mounts, MountReach{HostPaths: []string{"/tmp"}})
			r.Sensitive = []string{"/tmp/te2e1/state"}
		}, policy.FindingSensitiveHostMount, "host /tmp mounted"},
		{"existing cgroup", func(s *specs.Spec, r *Reach) {
			s.Linux.CgroupsPath = "/default/c1"
			r.CgroupExists = true
		}, policy.FindingHostCgroup, "exists already"},
		{"pod's own sandbox folder", func(s *specs.Spec, r *Reach) {
			s.Mounts = append(s.Mounts, bind("/tmp/te2e1/state/io.containerd.grpc.v1.cri/sandboxes/p1/shm"))
			r.Mounts = append(r.Mounts, MountReach{HostPaths: []string{"/tmp/te2e1/state/io.containerd.grpc.v1.cri/sandboxes/p1/shm"}})
			r.Sensitive = []string{"/tmp/te2e1/state"}
			r.RuntimeOwned = []string{"/tmp/te2e1/state/io.containerd.grpc.v1.cri/sandboxes/p1"}
		}, "", ""},
		{"another pod's sandbox folder", func(s *specs.Spec, r *Reach) {
			s.Mounts = append(s.Mounts, bind("/tmp/te2e1/state/io.containerd.grpc.v1.cri/sandboxes/p2/shm"))
			r.Mounts = append(r.Mounts, MountReach{HostPaths: []string{"/tmp/te2e1/state/io.containerd.grpc.v1.cri/sandboxes/p2/shm"}})
			r.Sensitive = []string{"/tmp/te2e1/state"}
			r.RuntimeOwned = []string{"/tmp/te2e1/state/io.containerd.grpc.v1.cri/sandboxes/p1"}
		}, policy.FindingSensitiveHostMount, "sandboxes/p2/shm"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := safeSpec()
			r := Lexical(s, "/run/containerd/io.containerd.runtime.v2.task/default/c1")
			tc.modify(s, r)
			got := Findings(Facts{ID: "c1", Image: "registry.internal/app:1", Spec: s, Reach: r})
			if tc.id == "" {
				if len(got) != 0 {
					t.Fatalf("findings = %v, want none", got)
				}
				return
			}
			i := slices.IndexFunc(got, func(f Finding) bool { return f.ID == tc.id })
			if i < 0 || !strings.Contains(got[i].Evidence, tc.want) {
				t.Fatalf("findings = %v, want %s with %q", got, tc.id, tc.want)
			}
		})
	}
}

func TestNoImageIsUnmanagedRootfs(t *testing.T) {
	got := Findings(Facts{ID: "c1", Spec: safeSpec()})
	if len(got) != 1 || got[0].ID != policy.FindingUnmanagedRootfs || !strings.Contains(got[0].Evidence, "no image") {
		t.Errorf("findings = %v, want only unmanaged-rootfs for no image", got)
	}
}

func TestBound(t *testing.T) {
	long := strings.Repeat("é", MaxEvidence)
	got := Bound(long)
	if len(got) > MaxEvidence+32 || !strings.Contains(got, "bytes cut]") || !utf8.ValidString(got) {
		t.Errorf("Bound of %d bytes = %d bytes, valid UTF-8 %t", len(long), len(got), utf8.ValidString(got))
	}
	if Bound("short") != "short" {
		t.Error("Bound changed a short string")
	}
}
