package hardening_test

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/triage-runtime/triage/classifier"
	"github.com/triage-runtime/triage/hardening"
	"github.com/triage-runtime/triage/policy"
)

// ctrDefault reads the spec `ctr run` writes (containerd's defaults).
func ctrDefault(t testing.TB) *specs.Spec {
	t.Helper()
	data, err := os.ReadFile("../classifier/testdata/corpus/ctr-default.json")
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

// tier returns a parsed tier of the given runtime with the hardening table body.
func tier(t testing.TB, runtime, hardening string) *policy.Tier {
	t.Helper()
	doc := "default_tier = \"t\"\n[tier.t]\nstrength = 1\nruntime = \"" + runtime + "\"\n[tier.t.hardening]\n" + hardening
	p, err := policy.Parse("test.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return p.Tiers["t"]
}

const runc, runsc, kata = "io.containerd.runc.v2", "io.containerd.runsc.v1", "io.containerd.kata.v2"

func control(t *testing.T, cs []hardening.Control, id string) hardening.Control {
	t.Helper()
	for _, c := range cs {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("no control %s in %v", id, cs)
	return hardening.Control{}
}

var baselineNoNetRaw = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_SETGID",
	"CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}

func TestApplyControls(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	cases := []struct {
		name      string
		runtime   string
		hardening string
		host      hardening.Host
		edit      func(*specs.Spec) // before Apply
		id        string
		status    hardening.Status
		detail    string // substring
		check     func(t *testing.T, s *specs.Spec)
	}{
		{name: "capabilities default drops NET_RAW", runtime: runc, id: hardening.ControlCapabilities, status: hardening.Enforced, detail: "dropped CAP_NET_RAW",
			check: func(t *testing.T, s *specs.Spec) {
				c := s.Process.Capabilities
				for name, set := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "permitted": c.Permitted} {
					if !slices.Equal(set, baselineNoNetRaw) {
						t.Errorf("%s = %v", name, set)
					}
				}
				if c.Inheritable != nil || c.Ambient != nil {
					t.Errorf("inheritable %v, ambient %v: want nil as requested", c.Inheritable, c.Ambient)
				}
			}},
		{name: "capabilities allow-list intersects every set", runtime: runc, hardening: `capabilities = ["chown", "CAP_KILL", "SYS_ADMIN"]`,
			edit: func(s *specs.Spec) {
				s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN")
				s.Process.Capabilities.Ambient = []string{"CAP_KILL", "CAP_NET_RAW"}
			},
			id: hardening.ControlCapabilities, status: hardening.Enforced, detail: "CAP_MKNOD",
			check: func(t *testing.T, s *specs.Spec) {
				c := s.Process.Capabilities
				if !slices.Equal(c.Bounding, []string{"CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"}) || !slices.Equal(c.Effective, []string{"CAP_CHOWN", "CAP_KILL"}) || !slices.Equal(c.Ambient, []string{"CAP_KILL"}) {
					t.Errorf("capabilities = %+v", c)
				}
			}},
		{name: "capabilities ALL keeps", runtime: runc, hardening: `capabilities = ["ALL"]`, id: hardening.ControlCapabilities, status: hardening.Kept,
			check: func(t *testing.T, s *specs.Spec) {
				if !slices.Contains(s.Process.Capabilities.Bounding, "CAP_NET_RAW") {
					t.Error("NET_RAW dropped")
				}
			}},
		{name: "capabilities under gVisor are translated", runtime: runsc, id: hardening.ControlCapabilities, status: hardening.Translated, detail: "gVisor's sentry"},
		{name: "no_new_privileges set", runtime: runc, id: hardening.ControlNoNewPrivileges, status: hardening.Enforced, detail: "set",
			check: func(t *testing.T, s *specs.Spec) {
				if !s.Process.NoNewPrivileges {
					t.Error("noNewPrivileges false")
				}
			}},
		{name: "no_new_privileges off keeps", runtime: runc, hardening: "no_new_privileges = false", id: hardening.ControlNoNewPrivileges, status: hardening.Kept,
			check: func(t *testing.T, s *specs.Spec) {
				if s.Process.NoNewPrivileges {
					t.Error("noNewPrivileges set")
				}
			}},
		{name: "read_only_rootfs opt-in", runtime: runc, hardening: "read_only_rootfs = true", id: hardening.ControlReadOnlyRootfs, status: hardening.Enforced,
			check: func(t *testing.T, s *specs.Spec) {
				if !s.Root.Readonly {
					t.Error("rootfs writable")
				}
			}},
		{name: "read_only_rootfs default keeps", runtime: runc, id: hardening.ControlReadOnlyRootfs, status: hardening.Kept,
			check: func(t *testing.T, s *specs.Spec) {
				if s.Root.Readonly {
					t.Error("rootfs made read-only")
				}
			}},
		{name: "mask_proc restores removed paths", runtime: runc,
			edit: func(s *specs.Spec) { s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = []string{"/proc/kcore"}, nil },
			id:   hardening.ControlMaskProc, status: hardening.Enforced, detail: "/proc/keys masked",
			check: func(t *testing.T, s *specs.Spec) {
				want := append([]string{"/proc/kcore"}, slices.DeleteFunc(slices.Clone(hardening.DefaultMaskedPaths), func(p string) bool { return p == "/proc/kcore" })...)
				if !slices.Equal(s.Linux.MaskedPaths, want) || !slices.Equal(s.Linux.ReadonlyPaths, hardening.DefaultReadonlyPaths) {
					t.Errorf("masked %v, readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
				}
			}},
		{name: "mask_proc under gVisor", runtime: runsc, id: hardening.ControlMaskProc, status: hardening.Translated, detail: "gVisor serves its own /proc"},
		{name: "pids_limit default", runtime: runc, id: hardening.ControlPidsLimit, status: hardening.Enforced, detail: "pids.max 4096",
			check: func(t *testing.T, s *specs.Spec) {
				if l := s.Linux.Resources.Pids.Limit; l == nil || *l != 4096 {
					t.Errorf("pids limit %v", l)
				}
			}},
		{name: "pids_limit keeps a lower spec limit", runtime: runc,
			edit: func(s *specs.Spec) { s.Linux.Resources.Pids = &specs.LinuxPids{Limit: i64(100)} },
			id:   hardening.ControlPidsLimit, status: hardening.Enforced, detail: "within 4096",
			check: func(t *testing.T, s *specs.Spec) {
				if *s.Linux.Resources.Pids.Limit != 100 {
					t.Errorf("pids limit %d", *s.Linux.Resources.Pids.Limit)
				}
			}},
		{name: "pids_limit lowers an unlimited spec", runtime: runc, hardening: "pids_limit = 50",
			edit: func(s *specs.Spec) { s.Linux.Resources.Pids = &specs.LinuxPids{Limit: i64(-1)} },
			id:   hardening.ControlPidsLimit, status: hardening.Enforced,
			check: func(t *testing.T, s *specs.Spec) {
				if *s.Linux.Resources.Pids.Limit != 50 {
					t.Errorf("pids limit %d", *s.Linux.Resources.Pids.Limit)
				}
			}},
		{name: "pids_limit 0 keeps", runtime: runc, hardening: "pids_limit = 0", id: hardening.ControlPidsLimit, status: hardening.Kept,
			check: func(t *testing.T, s *specs.Spec) {
				if s.Linux.Resources.Pids != nil {
					t.Errorf("pids set: %v", s.Linux.Resources.Pids)
				}
			}},
		{name: "run_as_non_root uid replaces root", runtime: runc, hardening: `run_as_non_root = "65534:65533"`,
			edit: func(s *specs.Spec) { s.Process.User.AdditionalGids = []uint32{0, 10} },
			id:   hardening.ControlRunAsNonRoot, status: hardening.Enforced, detail: "65534:65533",
			check: func(t *testing.T, s *specs.Spec) {
				if u := s.Process.User; u.UID != 65534 || u.GID != 65533 || !slices.Equal(u.AdditionalGids, []uint32{10}) {
					t.Errorf("user %+v", u)
				}
			}},
		{name: "run_as_non_root allow keeps root", runtime: runc, id: hardening.ControlRunAsNonRoot, status: hardening.Kept},
		{name: "run_as_non_root deny passes a user", runtime: runc, hardening: `run_as_non_root = "deny"`,
			edit: func(s *specs.Spec) { s.Process.User.UID = 1000 }, id: hardening.ControlRunAsNonRoot, status: hardening.NotApplicable},
		{name: "host_namespaces strip", runtime: runc, hardening: `host_namespaces = "strip"`,
			edit: func(s *specs.Spec) {
				s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.NetworkNamespace })
			},
			id: hardening.ControlHostNamespaces, status: hardening.Enforced, detail: "no network namespace",
			check: func(t *testing.T, s *specs.Spec) {
				if !slices.Contains(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace}) {
					t.Errorf("namespaces %v", s.Linux.Namespaces)
				}
			}},
		{name: "host_namespaces strip is Kata's default", runtime: kata,
			edit: func(s *specs.Spec) {
				for i := range s.Linux.Namespaces {
					if s.Linux.Namespaces[i].Type == specs.PIDNamespace {
						s.Linux.Namespaces[i].Path = "/proc/1/ns/pid"
					}
				}
			},
			id: hardening.ControlHostNamespaces, status: hardening.Enforced, detail: "pid namespace joins /proc/1/ns/pid",
			check: func(t *testing.T, s *specs.Spec) {
				if !slices.Contains(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace}) {
					t.Errorf("namespaces %v", s.Linux.Namespaces)
				}
			}},
		{name: "host_namespaces allow keeps", runtime: runc, hardening: `host_namespaces = "allow"`,
			edit: func(s *specs.Spec) { s.Linux.Namespaces = s.Linux.Namespaces[:0] },
			id:   hardening.ControlHostNamespaces, status: hardening.Kept, detail: "no ipc namespace"},
		{name: "sensitive_mounts allow keeps", runtime: runc, hardening: `sensitive_mounts = "allow"`,
			edit: func(s *specs.Spec) {
				s.Mounts = append(s.Mounts, specs.Mount{Destination: "/host/etc", Source: "/etc", Type: "bind", Options: []string{"rbind"}})
			},
			id: hardening.ControlSensitiveMounts, status: hardening.Kept, detail: "host /etc mounted at /host/etc"},
		{name: "host_devices allow keeps", runtime: runc, hardening: `host_devices = "allow"`,
			edit: func(s *specs.Spec) { s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/sda", Type: "b", Major: 8}} },
			id:   hardening.ControlHostDevices, status: hardening.Kept, detail: "/dev/sda"},
		{name: "user_namespace added where the host can", runtime: runc, hardening: "user_namespace = true", host: hardening.Host{UserNamespaces: true},
			id: hardening.ControlUserNamespace, status: hardening.Enforced, detail: "container ids 0-65535",
			check: func(t *testing.T, s *specs.Spec) {
				want := []specs.LinuxIDMapping{{ContainerID: 0, HostID: hardening.UserNamespaceHostID, Size: hardening.UserNamespaceSize}}
				if !slices.Contains(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace}) || !slices.Equal(s.Linux.UIDMappings, want) || !slices.Equal(s.Linux.GIDMappings, want) {
					t.Errorf("namespaces %v, uid map %v, gid map %v", s.Linux.Namespaces, s.Linux.UIDMappings, s.Linux.GIDMappings)
				}
			}},
		{name: "user_namespace unsupported host", runtime: runc, hardening: "user_namespace = true", id: hardening.ControlUserNamespace, status: hardening.Unsupported,
			check: func(t *testing.T, s *specs.Spec) {
				if s.Linux.UIDMappings != nil {
					t.Error("mapping added")
				}
			}},
		{name: "apparmor profile where the host has it", runtime: runc, hardening: `apparmor_profile = "triage-default"`, host: hardening.Host{AppArmor: true},
			id: hardening.ControlApparmor, status: hardening.Enforced,
			check: func(t *testing.T, s *specs.Spec) {
				if s.Process.ApparmorProfile != "triage-default" {
					t.Errorf("profile %q", s.Process.ApparmorProfile)
				}
			}},
		{name: "apparmor without host support", runtime: runc, hardening: `apparmor_profile = "triage-default"`, id: hardening.ControlApparmor, status: hardening.Unsupported,
			check: func(t *testing.T, s *specs.Spec) {
				if s.Process.ApparmorProfile != "" {
					t.Errorf("profile %q", s.Process.ApparmorProfile)
				}
			}},
		{name: "apparmor ignored by gVisor", runtime: runsc, host: hardening.Host{AppArmor: true},
			edit: func(s *specs.Spec) { s.Process.ApparmorProfile = "cri-containerd.apparmor.d" },
			id:   hardening.ControlApparmor, status: hardening.Unsupported, detail: "gVisor ignores AppArmor"},
		{name: "apparmor absent in Kata guest", runtime: kata, host: hardening.Host{AppArmor: true},
			edit: func(s *specs.Spec) { s.Process.ApparmorProfile = "cri-containerd.apparmor.d" },
			id:   hardening.ControlApparmor, status: hardening.Unsupported, detail: "Kata guest has no AppArmor"},
		{name: "annotations stripped", runtime: runc, hardening: `allow_annotations = ["dev.gvisor.spec.mount."]`,
			edit: func(s *specs.Spec) {
				s.Annotations = map[string]string{
					"io.katacontainers.config.hypervisor.kernel_params": "x", "dev.gvisor.internal.x": "y",
					"dev.gvisor.spec.mount.data.share": "pod", "io.containerd.runc.v2.group": "g", "io.kubernetes.cri.container-type": "container",
				}
			},
			id: hardening.ControlAnnotations, status: hardening.Enforced, detail: "removed dev.gvisor.internal.x, io.containerd.runc.v2.group, io.katacontainers.config.hypervisor.kernel_params",
			check: func(t *testing.T, s *specs.Spec) {
				if len(s.Annotations) != 2 || s.Annotations["dev.gvisor.spec.mount.data.share"] != "pod" || s.Annotations["io.kubernetes.cri.container-type"] != "container" {
					t.Errorf("annotations %v", s.Annotations)
				}
			}},
		{name: "seccomp runtime-default replaces unconfined", runtime: runc, id: hardening.ControlSeccomp, status: hardening.Enforced, detail: "containerd's default profile",
			check: func(t *testing.T, s *specs.Spec) {
				if sc := s.Linux.Seccomp; sc == nil || sc.DefaultAction != specs.ActErrno || !allows(sc, "ptrace") || allows(sc, "mount") {
					t.Errorf("seccomp %+v", sc)
				}
			}},
		{name: "seccomp strict", runtime: runc, hardening: "seccomp = \"strict\"\ncapabilities = [\"ALL\"]", id: hardening.ControlSeccomp, status: hardening.Enforced,
			edit: func(s *specs.Spec) {
				s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN")
			},
			check: func(t *testing.T, s *specs.Spec) {
				sc := s.Linux.Seccomp
				for _, n := range hardening.StrictDeniedSyscalls {
					if allows(sc, n) {
						t.Errorf("strict profile allows %s", n)
					}
				}
				if !allows(sc, "read") || !allows(sc, "sethostname") {
					t.Error("strict profile lost what the default allows")
				}
			}},
		{name: "seccomp keep", runtime: runc, hardening: `seccomp = "keep"`, id: hardening.ControlSeccomp, status: hardening.Kept, detail: "not filtered",
			check: func(t *testing.T, s *specs.Spec) {
				if s.Linux.Seccomp != nil {
					t.Error("profile set")
				}
			}},
		{name: "seccomp under gVisor", runtime: runsc, host: hardening.Host{GVisorOCISeccomp: true}, id: hardening.ControlSeccomp, status: hardening.Translated, detail: "runsc oci-seccomp"},
		{name: "hooks stripped", runtime: runc, hardening: `hooks = "strip"
allowed_hooks = ["/usr/bin/nvidia-ctk"]`, id: hardening.ControlHooks, status: hardening.Enforced, detail: "removed the hooks not in allowed_hooks: /bin/sh",
			edit: func(s *specs.Spec) {
				s.Hooks = &specs.Hooks{Prestart: []specs.Hook{{Path: "/bin/sh"}, {Path: "/usr/bin/nvidia-ctk"}}}
			},
			check: func(t *testing.T, s *specs.Spec) {
				if len(s.Hooks.Prestart) != 1 || s.Hooks.Prestart[0].Path != "/usr/bin/nvidia-ctk" {
					t.Errorf("prestart hooks left: %v", s.Hooks.Prestart)
				}
			}},
		{name: "hooks the node adds kept", runtime: runc, hardening: `allowed_hooks = ["/usr/bin/nvidia-ctk"]`, id: hardening.ControlHooks, status: hardening.Kept, detail: "allowed by allowed_hooks",
			edit: func(s *specs.Spec) {
				s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/usr/bin/nvidia-ctk"}}}
			}},
		{name: "bind source pinned to what was judged", runtime: runc, id: hardening.ControlSensitiveMounts, status: hardening.NotApplicable, detail: "1 bind mount source(s) pinned",
			edit: func(s *specs.Spec) {
				s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data", Source: "data", Type: "bind"})
			},
			check: func(t *testing.T, s *specs.Spec) {
				if got := s.Mounts[len(s.Mounts)-1].Source; got != "/run/c1/data" {
					t.Errorf("source %q, want the resolved /run/c1/data", got)
				}
			}},
		{name: "seccomp ignored by the Kata guest", runtime: kata, id: hardening.ControlSeccomp, status: hardening.Unsupported, detail: "disable_guest_seccomp",
			check: func(t *testing.T, s *specs.Spec) {
				if s.Linux.Seccomp == nil {
					t.Error("profile not written")
				}
			}},
		{name: "seccomp in a Kata guest that applies it", runtime: kata, host: hardening.Host{KataGuestSeccomp: true}, id: hardening.ControlSeccomp, status: hardening.Translated, detail: "kata-agent"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := ctrDefault(t)
			if tc.edit != nil {
				tc.edit(s)
			}
			if tc.host.Reach == nil {
				tc.host.Reach = classifier.Lexical(s, "/run/c1")
			}
			if tc.runtime == runsc && tc.id != hardening.ControlSeccomp {
				tc.host.GVisorOCISeccomp = true
			}
			cs, err := hardening.Apply(s, tier(t, tc.runtime, tc.hardening), tc.host)
			if err != nil {
				t.Fatal(err)
			}
			if len(cs) != controls {
				t.Errorf("%d controls, want one per control (%d): %v", len(cs), controls, cs)
			}
			c := control(t, cs, tc.id)
			if c.Status != tc.status || !strings.Contains(c.Detail, tc.detail) {
				t.Errorf("%s = %s %q, want %s containing %q", tc.id, c.Status, c.Detail, tc.status, tc.detail)
			}
			if tc.check != nil {
				tc.check(t, s)
			}
		})
	}
}

// allows reports whether the profile allows the syscall without conditions.
func allows(p *specs.LinuxSeccomp, name string) bool {
	return slices.ContainsFunc(p.Syscalls, func(r specs.LinuxSyscall) bool {
		return r.Action == specs.ActAllow && len(r.Args) == 0 && slices.Contains(r.Names, name)
	})
}

// controls is how many controls Apply reports, one per [tier.NAME.hardening] control.
const controls = 16

func TestApplyRefuses(t *testing.T) {
	cases := []struct {
		name      string
		runtime   string
		hardening string
		edit      func(*specs.Spec)
		class     error
		msg       string
	}{
		{"host network", runc, "", func(s *specs.Spec) {
			s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.NetworkNamespace })
		}, hardening.ErrHostNamespace, `host_namespaces (test.toml:5:2): the workload shares the host's namespaces (no network namespace (shares the host's))`},
		{"gVisor that ignores the OCI profile", runsc, "", nil, hardening.ErrSeccompUnsupported, `add oci-seccomp = "true" under [runsc_config]`},
		{"hooks", runc, "", func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "id > /tmp/pwned"}}}}
		}, hardening.ErrHooks, "createRuntime /bin/sh"},
		{"existing cgroup", runc, "", func(s *specs.Spec) { s.Linux.CgroupsPath = "/system.slice/containerd.service" }, hardening.ErrHostCgroup, "does not end with the container's id"},
		{"parent of the containerd socket", runc, "", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/r", Source: "/run", Type: "bind"})
		}, hardening.ErrSensitiveMount, "host /run mounted at /r"},
		{"docker socket", runsc, "", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/var/run/docker.sock", Source: "/var/run/docker.sock", Type: "bind"})
		}, hardening.ErrSensitiveMount, "host /var/run/docker.sock mounted at /var/run/docker.sock"},
		{"device", kata, "", func(s *specs.Spec) {
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Access: "rwm"})
		}, hardening.ErrHostDevice, "device cgroup allows a *:* rwm"},
		{"root", runc, `run_as_non_root = "deny"`, nil, hardening.ErrRunAsRoot, "runs as root (uid 0)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := ctrDefault(t)
			if tc.edit != nil {
				tc.edit(s)
			}
			host := hardening.Host{ID: "c1", GVisorOCISeccomp: tc.class != hardening.ErrSeccompUnsupported}
			cs, err := hardening.Apply(s, tier(t, tc.runtime, tc.hardening), host)
			var he *hardening.Error
			if !errors.Is(err, tc.class) || !errors.As(err, &he) {
				t.Fatalf("error %v, want %v", err, tc.class)
			}
			if !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), "[tier.t.hardening]") {
				t.Errorf("error %q, want it to name the table and contain %q", err, tc.msg)
			}
			if len(cs) != controls {
				t.Errorf("%d controls returned with the refusal, want %d", len(cs), controls)
			}
		})
	}
}

func TestApplyRootInUserNamespace(t *testing.T) {
	s := ctrDefault(t)
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	if _, err := hardening.Apply(s, tier(t, runc, `run_as_non_root = "deny"`), hardening.Host{}); err != nil {
		t.Errorf("root remapped to host uid 100000 refused: %v", err)
	}
}

func TestApplyInvalidSpec(t *testing.T) {
	_, err := hardening.Apply(&specs.Spec{}, tier(t, runc, ""), hardening.Host{})
	if !errors.Is(err, hardening.ErrInvalidSpec) {
		t.Errorf("error %v, want ErrInvalidSpec", err)
	}
}

func TestApplyCodeBuiltTier(t *testing.T) {
	s := ctrDefault(t)
	cs, err := hardening.Apply(s, &policy.Tier{Name: "x", Runtime: runc}, hardening.Host{})
	if err != nil || len(cs) != controls || s.Linux.Seccomp == nil || !s.Process.NoNewPrivileges {
		t.Errorf("a tier without a hardening table gets the defaults: %v %v", cs, err)
	}
}

func TestApplySeccompFile(t *testing.T) {
	dir := t.TempDir()
	prof := `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]}`
	if err := os.WriteFile(dir+"/p.json", []byte(prof), 0o600); err != nil {
		t.Fatal(err)
	}
	tr := tier(t, runc, `seccomp = "`+dir+`/p.json"`)
	s := ctrDefault(t)
	cs, err := hardening.Apply(s, tr, hardening.Host{})
	if err != nil {
		t.Fatal(err)
	}
	if sc := s.Linux.Seccomp; sc.DefaultAction != specs.ActErrno || len(sc.Syscalls) != 1 || !slices.Equal(sc.Syscalls[0].Names, []string{"read", "write"}) {
		t.Errorf("seccomp %+v", sc)
	}
	if c := control(t, cs, hardening.ControlSeccomp); c.Status != hardening.Enforced || !strings.Contains(c.Detail, "p.json") {
		t.Errorf("control %+v", c)
	}
	s.Linux.Seccomp.Syscalls[0].Names[0] = "changed"
	if tr.Hardening.SeccompProfile.Syscalls[0].Names[0] != "read" {
		t.Error("the spec shares the policy's profile")
	}
}
