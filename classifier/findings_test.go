package classifier

import (
	"go/build"
	"slices"
	"strings"
	"testing"

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
		check  func(*specs.Spec) string
		modify func(*specs.Spec)
		want   string
	}{
		{"privileged/all capabilities", checkPrivileged, func(s *specs.Spec) {
			s.Process.Capabilities.Bounding = slices.Clone(allCapabilities)
		}, "every capability"},
		{"privileged/unconfined seccomp and devices", checkPrivileged, func(s *specs.Spec) {
			s.Linux.Seccomp = nil
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Access: "rwm"})
		}, "no seccomp profile and device cgroup allows a *:* rwm"},
		{"privileged/seccomp alone is not", checkPrivileged, func(s *specs.Spec) { s.Linux.Seccomp = nil }, ""},
		{"privileged/one capability short", checkPrivileged, func(s *specs.Spec) {
			s.Process.Capabilities.Bounding = slices.DeleteFunc(slices.Clone(allCapabilities), func(c string) bool { return c == "CAP_SYS_ADMIN" })
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
		{"sensitive-host-mount/kubelet pod volume", checkSensitiveHostMount, func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, bind("/var/lib/kubelet/pods/uid/volumes/kubernetes.io~empty-dir/cache"))
		}, ""},
		{"sensitive-host-mount/cri sandbox files", checkSensitiveHostMount, func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, bind("/run/containerd/io.containerd.grpc.v1.cri/sandboxes/abc/shm"))
		}, ""},
		{"sensitive-host-mount/proc filesystem is not a bind", checkSensitiveHostMount, func(s *specs.Spec) {}, ""},
		{"dangerous-capability/sys_admin in bounding", checkDangerousCapability, func(s *specs.Spec) {
			s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN")
		}, "CAP_SYS_ADMIN"},
		{"dangerous-capability/net_admin in permitted only", checkDangerousCapability, func(s *specs.Spec) {
			s.Process.Capabilities.Permitted = append(s.Process.Capabilities.Permitted, "CAP_NET_ADMIN")
		}, "CAP_NET_ADMIN"},
		{"dangerous-capability/containerd's defaults are baseline", checkDangerousCapability, func(s *specs.Spec) {
			s.Process.Capabilities.Bounding = []string{"CAP_NET_RAW", "CAP_MKNOD", "CAP_SETFCAP", "CAP_CHOWN"}
		}, ""},
		{"non-baseline-capability/beyond the PSS baseline", checkNonBaselineCapability, func(s *specs.Spec) {
			s.Process.Capabilities.Bounding = []string{"CAP_NET_RAW", "CAP_IPC_LOCK", "sys_nice", "CAP_SYS_ADMIN"}
		}, "CAP_IPC_LOCK, CAP_SYS_ADMIN, CAP_SYS_NICE"},
		{"non-baseline-capability/baseline only", checkNonBaselineCapability, func(s *specs.Spec) {
			s.Process.Capabilities.Bounding = policy.BaselineCapabilities()
		}, ""},
		{"dangerous-capability/name without prefix", checkDangerousCapability, func(s *specs.Spec) {
			s.Process.Capabilities.Effective = append(s.Process.Capabilities.Effective, "bpf")
		}, "CAP_BPF"},
		{"dangerous-capability/every listed one reported in order", checkDangerousCapability, func(s *specs.Spec) {
			s.Process.Capabilities.Bounding = []string{"CAP_SYS_TIME", "CAP_SYS_ADMIN"}
		}, "CAP_SYS_ADMIN, CAP_SYS_TIME"},
		{"dangerous-capability/no capabilities", checkDangerousCapability, func(s *specs.Spec) { s.Process.Capabilities = nil }, ""},
		{"run-as-root/uid 0", checkRunAsRoot, func(s *specs.Spec) { s.Process.User.UID = 0 }, "uid 0 without a user namespace"},
		{"run-as-root/remapped", checkRunAsRoot, func(s *specs.Spec) {
			s.Process.User.UID = 0
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		}, ""},
		{"run-as-root/identity mapping", checkRunAsRoot, func(s *specs.Spec) {
			s.Process.User.UID = 0
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 0, Size: 65536}}
		}, "mapped to host uid 0"},
		{"run-as-root/user namespace without mappings", checkRunAsRoot, func(s *specs.Spec) {
			s.Process.User.UID = 0
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		}, "mapped to host uid 0"},
		{"seccomp-unconfined/none", checkSeccompUnconfined, func(s *specs.Spec) { s.Linux.Seccomp = nil }, "no seccomp profile"},
		{"seccomp-unconfined/allow everything", checkSeccompUnconfined, func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
		}, "allows every syscall"},
		{"seccomp-unconfined/allow by default with a block list", checkSeccompUnconfined, func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"keyctl"}, Action: specs.ActErrno}}}
		}, ""},
		{"apparmor-unconfined/empty", checkApparmorUnconfined, func(s *specs.Spec) { s.Process.ApparmorProfile = "" }, "no AppArmor profile"},
		{"apparmor-unconfined/unconfined", checkApparmorUnconfined, func(s *specs.Spec) { s.Process.ApparmorProfile = "unconfined" }, `"unconfined"`},
		{"privilege-escalation/no_new_privs false", checkPrivilegeEscalation, func(s *specs.Spec) { s.Process.NoNewPrivileges = false }, "noNewPrivileges is false"},
		{"writable-rootfs/writable", checkWritableRootfs, func(s *specs.Spec) { s.Root.Readonly = false }, "writable"},
		{"writable-rootfs/no root", checkWritableRootfs, func(s *specs.Spec) { s.Root = nil }, "writable"},
		{"unsafe-sysctl/kernel.msgmax", checkUnsafeSysctl, func(s *specs.Spec) {
			s.Linux.Sysctl = map[string]string{"kernel.msgmax": "1", "net.ipv4.tcp_syncookies": "1"}
		}, "kernel.msgmax=1"},
		{"unsafe-sysctl/slash notation of a safe one", checkUnsafeSysctl, func(s *specs.Spec) {
			s.Linux.Sysctl = map[string]string{"net/ipv4/ip_local_port_range": "1024 65000"}
		}, ""},
		{"unsafe-sysctl/all safe", checkUnsafeSysctl, func(s *specs.Spec) {
			s.Linux.Sysctl = map[string]string{}
			for _, k := range safeSysctls {
				s.Linux.Sysctl[k] = "1"
			}
		}, ""},
		{"host-device/device node", HostDeviceAccess, func(s *specs.Spec) {
			s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/kvm", Type: "c", Major: 10, Minor: 232}}
		}, "device /dev/kvm (c 10:232)"},
		{"host-device/cgroup allows all", HostDeviceAccess, func(s *specs.Spec) {
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: "a", Access: "rwm"})
		}, "allows a *:* rwm"},
		{"host-device/cgroup allows a block device", HostDeviceAccess, func(s *specs.Spec) {
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: "b", Major: i64(8), Minor: i64(0), Access: "rw"})
		}, "allows b 8:0 rw"},
		{"host-device/default devices", HostDeviceAccess, func(s *specs.Spec) {
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices,
				specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rwm"},
				specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(136), Access: "rwm"},
				specs.LinuxDeviceCgroup{Allow: true, Type: "c", Access: "m"})
		}, ""},
		{"unmasked-proc/no masked paths", checkUnmaskedProc, func(s *specs.Spec) { s.Linux.MaskedPaths = nil }, "/proc/kcore not masked"},
		{"unmasked-proc/proc/sys writable", checkUnmaskedProc, func(s *specs.Spec) { s.Linux.ReadonlyPaths = []string{"/proc/sysrq-trigger"} }, "/proc/sys not read-only"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := safeSpec()
			if ev := tc.check(s); ev != "" {
				t.Fatalf("fires on the safe spec: %q", ev)
			}
			tc.modify(s)
			got := tc.check(s)
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
	if got := Findings(Facts{Spec: safeSpec()}); len(got) != 0 {
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
