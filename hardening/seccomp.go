package hardening

import (
	"slices"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/triage-runtime/triage/policy"
)

// StrictDeniedSyscalls are the syscalls seccomp = "strict" takes out of containerd's
// default profile, even for a process that holds the capability the default profile
// would allow them for. Each is rarely needed by an application and a frequent kernel
// exploit path:
//   - keyrings (keyctl, add_key, request_key): kernel keyring bugs, and the keyring is
//     not namespaced;
//   - ptrace, process_vm_readv/writev, kcmp: inspecting other processes;
//   - personality: re-enabling legacy address-space layouts;
//   - userfaultfd: stalls the kernel in a page fault, a staple of race exploits;
//   - perf_event_open, bpf: large, often vulnerable kernel subsystems;
//   - io_uring_setup, io_uring_enter, io_uring_register: a second syscall interface
//     that seccomp cannot filter;
//   - unshare, setns, mount and the new mount API, umount, pivot_root, chroot: building
//     namespaces and mount trees inside the container.
var StrictDeniedSyscalls = []string{
	"keyctl", "add_key", "request_key",
	"ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
	"personality",
	"userfaultfd",
	"perf_event_open", "bpf",
	"io_uring_setup", "io_uring_enter", "io_uring_register",
	"unshare", "setns", "mount", "umount", "umount2", "mount_setattr", "move_mount",
	"open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "pivot_root", "chroot",
}

// DefaultProfile returns containerd's default seccomp profile for the capabilities in
// s (it allows more syscalls for CAP_SYS_ADMIN, CAP_SYS_PTRACE, ...).
func DefaultProfile(s *specs.Spec) *specs.LinuxSeccomp {
	if s.Process == nil || s.Process.Capabilities == nil {
		// containerd's function reads the bounding set without a nil check.
		c := *s
		c.Process = &specs.Process{Capabilities: &specs.LinuxCapabilities{}}
		s = &c
	}
	return seccomp.DefaultProfile(s)
}

// StrictProfile returns DefaultProfile(s) without StrictDeniedSyscalls: they are removed
// from every rule that allows them, and a rule left with no syscall is removed. The
// profile's default action (an errno) then refuses them.
func StrictProfile(s *specs.Spec) *specs.LinuxSeccomp {
	p := DefaultProfile(s)
	rules := p.Syscalls[:0]
	for _, r := range p.Syscalls {
		if r.Action == specs.ActAllow {
			r.Names = slices.DeleteFunc(slices.Clone(r.Names), func(n string) bool { return slices.Contains(StrictDeniedSyscalls, n) })
			if len(r.Names) == 0 {
				continue
			}
		}
		rules = append(rules, r)
	}
	p.Syscalls = rules
	return p
}

func (a *applier) seccomp() {
	l := a.linux()
	var detail string
	switch mode := a.cfg.Seccomp; {
	case mode == policy.SeccompKeep:
		if l.Seccomp == nil {
			a.report(ControlSeccomp, Kept, "the spec has no profile: syscalls are not filtered")
			return
		}
		a.report(ControlSeccomp, Kept, "the spec's profile (default action %s, %d rules)", l.Seccomp.DefaultAction, len(l.Seccomp.Syscalls))
		return
	case mode == policy.SeccompStrict:
		l.Seccomp = StrictProfile(a.spec)
		detail = "containerd's default profile without the strict list"
	case mode.IsFile() && a.cfg.SeccompProfile != nil:
		l.Seccomp = cloneProfile(a.cfg.SeccompProfile)
		detail = "profile " + string(mode)
	default:
		l.Seccomp = DefaultProfile(a.spec)
		detail = "containerd's default profile"
	}
	switch a.kind {
	case policy.KindGVisor:
		if !a.host.GVisorOCISeccomp {
			a.refuse(ControlSeccomp, ErrSeccompUnsupported,
				"%s would be written to the spec, but runsc ignores the OCI profile unless its configuration sets oci-seccomp: add oci-seccomp = \"true\" under [runsc_config] in the tier's config_path (%s), or set seccomp = %q",
				detail, a.tier.ConfigPath, policy.SeccompKeep)
			return
		}
		a.report(ControlSeccomp, Translated, "%s; applied by gVisor's sentry to the application's syscalls (runsc oci-seccomp), which never reach the host kernel", detail)
	case policy.KindKata:
		if a.host.KataGuestSeccomp {
			a.report(ControlSeccomp, Translated, "%s; applied in the guest VM by the kata-agent", detail)
			return
		}
		a.report(ControlSeccomp, Unsupported, "%s written to the spec, but the Kata guest ignores it (disable_guest_seccomp = true, Kata's default): set it to false in the Kata configuration", detail)
	default:
		a.report(ControlSeccomp, Enforced, "%s", detail)
	}
}

// cloneProfile copies a profile loaded once with the policy, so specs never share it.
func cloneProfile(p *specs.LinuxSeccomp) *specs.LinuxSeccomp {
	c := *p
	c.Architectures = slices.Clone(p.Architectures)
	c.Flags = slices.Clone(p.Flags)
	c.Syscalls = make([]specs.LinuxSyscall, len(p.Syscalls))
	for i, r := range p.Syscalls {
		r.Names = slices.Clone(r.Names)
		r.Args = slices.Clone(r.Args)
		c.Syscalls[i] = r
	}
	return &c
}
