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

// hostNamespaceTypes are the namespaces a workload must not share with the host. A
// namespace missing from the spec is the host's.
var hostNamespaceTypes = []specs.LinuxNamespaceType{
	specs.NetworkNamespace, specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace,
}

// hostNamespaces returns the namespaces the spec shares with the host, as evidence.
func hostNamespaces(s *specs.Spec) (types []specs.LinuxNamespaceType, evidence []string) {
	var nss []specs.LinuxNamespace
	if s.Linux != nil {
		nss = s.Linux.Namespaces
	}
	for _, typ := range hostNamespaceTypes {
		i := slices.IndexFunc(nss, func(ns specs.LinuxNamespace) bool { return ns.Type == typ })
		switch {
		case i < 0:
			evidence = append(evidence, fmt.Sprintf("no %s namespace (the host's)", typ))
		case classifier.IsHostNamespacePath(nss[i].Path):
			evidence = append(evidence, fmt.Sprintf("%s namespace joins %s", typ, nss[i].Path))
		default:
			continue
		}
		types = append(types, typ)
	}
	return types, evidence
}

func (a *applier) hostNamespaces() {
	types, ev := hostNamespaces(a.spec)
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
		a.report(ControlHostNamespaces, Enforced, "given new namespaces instead of the host's: %s", strings.Join(ev, "; "))
	default:
		a.refuse(ControlHostNamespaces, ErrHostNamespace,
			"the workload shares the host's namespaces (%s): run it without hostNetwork/hostPID/hostIPC, or set host_namespaces = %q or %q",
			strings.Join(ev, "; "), policy.HostStrip, policy.HostAllow)
	}
}

func (a *applier) sensitiveMounts() {
	var ev []string
	for _, m := range a.spec.Mounts {
		if classifier.IsSensitiveHostMount(m) {
			ev = append(ev, fmt.Sprintf("host %s at %s", m.Source, m.Destination))
		}
	}
	switch {
	case len(ev) == 0:
		a.report(ControlSensitiveMounts, NotApplicable, "no sensitive host mount")
	case a.cfg.SensitiveMounts == policy.HostAllow:
		a.report(ControlSensitiveMounts, Kept, "allowed: %s", strings.Join(ev, "; "))
	default:
		a.refuse(ControlSensitiveMounts, ErrSensitiveMount,
			"the workload mounts sensitive host paths (%s): remove the hostPath volumes, or set sensitive_mounts = %q", strings.Join(ev, "; "), policy.HostAllow)
	}
}

func (a *applier) hostDevices() {
	ev := classifier.HostDeviceAccess(a.spec)
	switch {
	case ev == "":
		a.report(ControlHostDevices, NotApplicable, "no host device")
	case a.cfg.HostDevices == policy.HostAllow:
		a.report(ControlHostDevices, Kept, "allowed: %s", ev)
	default:
		a.refuse(ControlHostDevices, ErrHostDevice,
			"the workload is given host devices (%s): remove the devices (and privileged: true), or set host_devices = %q", ev, policy.HostAllow)
	}
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
