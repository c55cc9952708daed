package hardening

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/triage-runtime/triage/classifier"
	"github.com/triage-runtime/triage/policy"
)

// DelegateControlAnnotations are the prefixes of annotations that reconfigure a delegate
// runtime: Kata's per-pod hypervisor and agent settings, gVisor's mount and platform
// hints, and the runc shim's grouping of containers into one shim. A workload must not
// set them unless its tier allows the prefix (allow_annotations).
var DelegateControlAnnotations = []string{"io.katacontainers.", "dev.gvisor.", "io.containerd.runc.v2.group"}

func (a *applier) annotations() {
	var stripped []string
	for _, k := range slices.Sorted(maps.Keys(a.spec.Annotations)) {
		if !hasPrefix(k, DelegateControlAnnotations) || hasPrefix(k, a.cfg.AllowAnnotations) {
			continue
		}
		delete(a.spec.Annotations, k)
		stripped = append(stripped, k)
	}
	if len(stripped) == 0 {
		a.report(ControlAnnotations, NotApplicable, "no delegate-control annotations")
		return
	}
	// Triage removes them before the delegate reads the spec, whatever the delegate.
	a.report(ControlAnnotations, Enforced, "removed %s", strings.Join(stripped, ", "))
}

func hasPrefix(s string, prefixes []string) bool {
	return slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(s, p) })
}

func (a *applier) hostNamespaces() {
	types, ev := classifier.HostNamespaces(a.spec, a.host.Reach)
	switch {
	case len(types) == 0:
		a.report(ControlHostNamespaces, NotApplicable, "no host namespace")
	case a.cfg.HostNamespaces == policy.HostAllow:
		a.report(ControlHostNamespaces, Kept, "allowed: %s", strings.Join(ev, "; "))
	case a.cfg.HostNamespaces == policy.HostStrip:
		l := a.linux()
		for _, typ := range types {
			l.Namespaces = slices.DeleteFunc(l.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == typ })
			l.Namespaces = append(l.Namespaces, specs.LinuxNamespace{Type: typ})
		}
		// The namespaces are reordered: what was resolved of them no longer lines up.
		a.host.Reach.Namespaces = nil
		a.report(ControlHostNamespaces, Enforced, "given new namespaces instead of the host's: %s", strings.Join(ev, "; "))
	default:
		a.refuse(ControlHostNamespaces, ErrHostNamespace,
			"the workload shares the host's namespaces (%s): run it without hostNetwork/hostPID/hostIPC, or set host_namespaces = %q or %q",
			strings.Join(ev, "; "), policy.HostStrip, policy.HostAllow)
	}
}

func (a *applier) sensitiveMounts() {
	ev := classifier.SensitiveMounts(a.spec, a.host.Reach)
	switch {
	case len(ev) == 0:
		a.report(ControlSensitiveMounts, NotApplicable, "no sensitive host mount%s", a.pinSources())
	case a.cfg.SensitiveMounts == policy.HostAllow:
		a.report(ControlSensitiveMounts, Kept, "allowed: %s%s", strings.Join(ev, "; "), a.pinSources())
	default:
		a.refuse(ControlSensitiveMounts, ErrSensitiveMount,
			"the workload mounts sensitive host paths (%s): remove the hostPath volumes, or set sensitive_mounts = %q", strings.Join(ev, "; "), policy.HostAllow)
	}
}

// pinSources writes into each bind mount the source that was judged (resolved against the
// bundle and through symlinks), so that the runtime mounts what was judged and not what a
// changed symlink points to by then. It returns a note for the report.
func (a *applier) pinSources() string {
	n := 0
	for i := range a.spec.Mounts {
		m := &a.spec.Mounts[i]
		if i >= len(a.host.Reach.Mounts) || !classifier.IsBind(*m) || len(a.host.Reach.Mounts[i].HostPaths) != 1 {
			continue
		}
		if p := a.host.Reach.Mounts[i].HostPaths[0]; p != m.Source {
			m.Source = p
			n++
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("; %d bind mount source(s) pinned to the resolved host path", n)
}

// hooks removes or refuses the spec's OCI hooks, which the runtime runs as host root;
// the hooks allowed_hooks names stay.
func (a *applier) hooks() {
	all := classifier.Hooks(a.spec)
	var foreign []string
	if a.spec.Hooks != nil {
		allowed := func(h specs.Hook) bool { return slices.Contains(a.cfg.AllowedHooks, h.Path) }
		for _, hs := range []*[]specs.Hook{&a.spec.Hooks.Prestart, &a.spec.Hooks.CreateRuntime, &a.spec.Hooks.CreateContainer,
			&a.spec.Hooks.StartContainer, &a.spec.Hooks.Poststart, &a.spec.Hooks.Poststop} {
			for _, h := range *hs {
				if !allowed(h) {
					foreign = append(foreign, h.Path)
				}
			}
			if a.cfg.Hooks == policy.HostStrip {
				*hs = slices.DeleteFunc(*hs, func(h specs.Hook) bool { return !allowed(h) })
			}
		}
	}
	switch {
	case len(all) == 0:
		a.report(ControlHooks, NotApplicable, "no OCI hooks")
	case len(foreign) == 0:
		a.report(ControlHooks, Kept, "allowed by allowed_hooks: %s", strings.Join(all, ", "))
	case a.cfg.Hooks == policy.HostAllow:
		a.report(ControlHooks, Kept, "allowed: %s", strings.Join(all, ", "))
	case a.cfg.Hooks == policy.HostStrip:
		// Triage removes them before the delegate reads the spec, whatever the delegate.
		a.report(ControlHooks, Enforced, "removed the hooks not in allowed_hooks: %s", strings.Join(foreign, ", "))
	default:
		a.refuse(ControlHooks, ErrHooks,
			"the spec has OCI hooks, which run on the host as root (%s): remove them, list the node's own in allowed_hooks, or set hooks = %q",
			strings.Join(all, ", "), policy.HostStrip)
	}
}

// gate applies a control that lets a reach into the host through or refuses it: not
// applicable without evidence, kept where the tier's setting allows it, else refused with
// the fix (a format whose first verb takes the evidence).
func (a *applier) gate(id string, setting policy.HostAccess, class error, evidence, none, fix string) {
	switch {
	case evidence == "":
		a.report(id, NotApplicable, "%s", none)
	case setting == policy.HostAllow:
		a.report(id, Kept, "allowed: %s", evidence)
	default:
		a.refuse(id, class, fix, evidence, policy.HostAllow)
	}
}

func (a *applier) cgroupsPath() {
	a.gate(ControlCgroupsPath, a.cfg.CgroupsPath, ErrHostCgroup,
		classifier.CgroupPathProblem(a.spec, a.host.ID, a.host.Reach.CgroupExists), "a new cgroup of the container's own",
		"%s: let containerd or the CRI plugin choose the cgroup (a path ending in the container's id), or set cgroups_path = %q")
}

func (a *applier) unknownFields() {
	a.gate(ControlUnknownFields, a.cfg.UnknownFields, ErrUnknownField,
		strings.Join(a.host.UnknownFields, ", "), "every field of the spec is known",
		"the spec has fields this Triage does not know, which may reach the host unjudged (%s): remove them, upgrade Triage, or set unknown_fields = %q")
}

func (a *applier) hostDevices() {
	a.gate(ControlHostDevices, a.cfg.HostDevices, ErrHostDevice,
		classifier.HostDeviceAccess(a.spec), "no host device",
		"the workload is given host devices (%s): remove the devices (and privileged: true), or set host_devices = %q")
}

// User namespace mapping Triage gives a runc workload that has none: container ids
// 0-65535 to host ids UserNamespaceHostID and up, a range no host account uses.
const (
	UserNamespaceHostID = 1 << 30
	UserNamespaceSize   = 65536
)

func (a *applier) userNamespace() {
	_, has := classifier.Namespace(a.spec, specs.UserNamespace)
	switch {
	case !a.cfg.UserNamespace:
		if has {
			a.report(ControlUserNamespace, Kept, "the spec has a user namespace")
			return
		}
		a.report(ControlUserNamespace, Kept, "off: no user namespace (user_namespace = false)")
	case has:
		a.report(ControlUserNamespace, Enforced, "the spec already has a user namespace")
	case !a.host.UserNamespaces:
		a.report(ControlUserNamespace, Unsupported, "the host cannot create user namespaces: the workload runs without one")
	default:
		l := a.linux()
		l.Namespaces = append(l.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: UserNamespaceHostID, Size: UserNamespaceSize}}
		l.UIDMappings, l.GIDMappings = m, slices.Clone(m)
		a.report(ControlUserNamespace, Enforced, "new user namespace: container ids 0-%d are host ids %d-%d", UserNamespaceSize-1, UserNamespaceHostID, UserNamespaceHostID+UserNamespaceSize-1)
	}
}
