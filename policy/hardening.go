package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/triage-runtime/triage/hardening/execrule"
)

// RuntimeKind is the family of a tier's delegate, which decides how each hardening control
// can be applied.
type RuntimeKind string

const (
	// KindRunc: io.containerd.runc.*; the host kernel enforces every OCI control.
	KindRunc RuntimeKind = "runc"
	// KindGVisor: io.containerd.runsc.*; gVisor's sentry implements the OCI controls for
	// the application it runs.
	KindGVisor RuntimeKind = "gvisor"
	// KindKata: io.containerd.kata*.*; the kata-agent applies the OCI controls in the guest.
	KindKata RuntimeKind = "kata"
	// KindOther: any other OCI runtime shim; controls are written into the spec as for runc.
	KindOther RuntimeKind = "other"
)

// Kind returns the family of the tier's delegate runtime.
func (t *Tier) Kind() RuntimeKind { return KindOf(t.Runtime) }

// KindOf returns the family of a containerd runtime type.
func KindOf(runtime string) RuntimeKind {
	name, _, _ := strings.Cut(strings.TrimPrefix(runtime, "io.containerd."), ".")
	switch {
	case name == "runc":
		return KindRunc
	case name == "runsc":
		return KindGVisor
	case name == "kata" || strings.HasPrefix(name, "kata-"):
		return KindKata
	}
	return KindOther
}

// SeccompMode is the seccomp setting of a tier: one of the Seccomp* constants, or the
// absolute path of an OCI seccomp profile (a JSON LinuxSeccomp object).
type SeccompMode string

const (
	// SeccompRuntimeDefault replaces the spec's profile with containerd's default profile
	// for the container's final capabilities. The default.
	SeccompRuntimeDefault SeccompMode = "runtime-default"
	// SeccompStrict is containerd's default profile without the syscalls listed in package
	// hardening (StrictDeniedSyscalls): keyrings, ptrace, BPF, perf, namespaces, mounts.
	SeccompStrict SeccompMode = "strict"
	// SeccompKeep leaves the spec's profile as it is, unconfined if it has none.
	SeccompKeep SeccompMode = "keep"
)

// IsFile reports whether the mode names a profile file.
func (m SeccompMode) IsFile() bool { return strings.HasPrefix(string(m), "/") }

// HostAccess says what a tier does with a workload that reaches into the host.
type HostAccess string

const (
	// HostDeny refuses to start the workload.
	HostDeny HostAccess = "deny"
	// HostStrip removes the host access and starts the workload (host_namespaces: the
	// workload gets namespaces of its own; hooks: the hooks are removed).
	HostStrip HostAccess = "strip"
	// HostAllow lets it through.
	HostAllow HostAccess = "allow"
)

// RunAsNonRoot is the run_as_non_root setting: "allow", "deny", or "UID" / "UID:GID", the
// user a workload that asks for root is run as instead.
type RunAsNonRoot string

const (
	// RootAllow lets processes run as uid 0.
	RootAllow RunAsNonRoot = "allow"
	// RootDeny refuses a process that runs as uid 0 (unless a user namespace maps it to an
	// unprivileged host uid).
	RootDeny RunAsNonRoot = "deny"
)

// User returns the uid and gid of a "UID[:GID]" setting (gid defaults to uid), and false
// for "allow", "deny" or a malformed value.
func (r RunAsNonRoot) User() (uid, gid uint32, ok bool) {
	return execrule.ParseUser(string(r))
}

// Hardening is a tier's [tier.NAME.hardening] table: what Triage changes in a workload's
// OCI spec before the delegate sees it, and what it refuses. Parse fills every setting
// left out with the default documented on it (the same for every runtime unless it says
// otherwise); a Tier built in code gets the defaults from DefaultHardening.
type Hardening struct {
	// Seccomp is the seccomp profile. Default SeccompRuntimeDefault.
	Seccomp SeccompMode `toml:"seccomp"`
	// Capabilities is the allow-list: every capability set of the process becomes the
	// requested set ∩ this list. Names with or without CAP_, any case; ["ALL"] allows every
	// capability. Default: the Kubernetes PSS baseline set minus CAP_NET_RAW.
	Capabilities []string `toml:"capabilities"`
	// NoNewPrivileges sets the process's noNewPrivileges, so setuid binaries and file
	// capabilities cannot raise privileges. Default true. false keeps the spec's value.
	NoNewPrivileges *bool `toml:"no_new_privileges"`
	// ReadOnlyRootfs mounts the root filesystem read-only. Default false (opt-in: many
	// images write to their root filesystem). false keeps the spec's value.
	ReadOnlyRootfs bool `toml:"read_only_rootfs"`
	// MaskProc restores containerd's default maskedPaths and readonlyPaths when a spec has
	// removed some. Default true. false keeps the spec's lists.
	MaskProc *bool `toml:"mask_proc"`
	// PidsLimit caps the number of processes (the lower of it and the spec's limit).
	// Default DefaultPidsLimit; 0 keeps the spec's limit.
	PidsLimit *int64 `toml:"pids_limit"`
	// RunAsNonRoot is what happens to a process running as uid 0. Default RootAllow.
	RunAsNonRoot RunAsNonRoot `toml:"run_as_non_root"`
	// HostNamespaces is what happens to a workload sharing the host's network, PID, IPC,
	// UTS or mount namespace. Default HostDeny; for Kata HostStrip (a VM cannot share the
	// host's namespaces, the workload gets the VM's own).
	HostNamespaces HostAccess `toml:"host_namespaces"`
	// SensitiveMounts is what happens to a workload bind-mounting a sensitive host path
	// (/etc, /proc, /sys, /var/lib/kubelet, a container runtime socket, ...). HostDeny or
	// HostAllow. Default HostDeny.
	SensitiveMounts HostAccess `toml:"sensitive_mounts"`
	// HostDevices is what happens to a workload given host devices or device cgroup access
	// beyond the defaults (/dev/null, zero, random, tty, ...). HostDeny or HostAllow.
	// Default HostDeny.
	HostDevices HostAccess `toml:"host_devices"`
	// UserNamespace runs a workload that has no user namespace in a new one, root mapped
	// to an unprivileged host range, where the host supports it. runc runtimes only.
	// Default false.
	UserNamespace bool `toml:"user_namespace"`
	// ApparmorProfile is the AppArmor profile the process runs under, applied where the
	// host has AppArmor enabled. runc runtimes only (gVisor and Kata guests have no
	// AppArmor). Default "": keep the spec's profile.
	ApparmorProfile string `toml:"apparmor_profile"`
	// Hooks is what happens to a workload whose spec has OCI hooks, which the runtime runs
	// as host root: HostDeny refuses it, HostStrip removes the hooks AllowedHooks does not
	// name, HostAllow keeps every hook. Default HostDeny.
	Hooks HostAccess `toml:"hooks"`
	// AllowedHooks are absolute paths of hook programs the node itself adds (a GPU
	// toolkit's, say): kept, whatever Hooks says. Default none.
	AllowedHooks []string `toml:"allowed_hooks"`
	// CgroupsPath is what happens to a workload whose linux.cgroupsPath names an existing
	// cgroup, climbs with "..", or does not end with the container's id: HostDeny or
	// HostAllow. Default HostDeny.
	CgroupsPath HostAccess `toml:"cgroups_path"`
	// UnknownFields is what happens to a workload whose spec has fields this Triage does
	// not know (a newer OCI spec, another platform's section): HostDeny or HostAllow.
	// Default HostDeny: an unknown field may reach the host in ways nothing judged.
	UnknownFields HostAccess `toml:"unknown_fields"`
	// AllowAnnotations are key prefixes of delegate-control annotations (io.katacontainers.*,
	// dev.gvisor.*, io.containerd.runc.v2.group) the tier lets through; the others are
	// removed from the spec. Default none.
	AllowAnnotations []string `toml:"allow_annotations"`

	// SeccompProfile is the profile read from the file Seccomp names, set by Parse; nil
	// otherwise.
	SeccompProfile *specs.LinuxSeccomp `toml:"-"`
	// Source is where the table is written ("file:line:column"), or where its tier is
	// when the table is absent; "" for a policy built in code. Used in messages.
	Source string `toml:"-"`
}

// Default hardening settings that are not a plain zero value.
const (
	// DefaultPidsLimit is the default pids_limit.
	DefaultPidsLimit = 4096
	// maxProfileSize bounds a seccomp profile file; containerd's default is about 20 KiB.
	maxProfileSize = 4 << 20
)

// DefaultHardening returns the defaults for a tier of the given runtime kind.
func DefaultHardening(kind RuntimeKind) *Hardening {
	h := &Hardening{}
	h.setDefaults(kind)
	return h
}

// setDefaults fills in every setting left empty. Together with Policy.setDefaults it is
// the only place hardening defaults are applied.
func (h *Hardening) setDefaults(kind RuntimeKind) {
	if h.Seccomp == "" {
		h.Seccomp = SeccompRuntimeDefault
	}
	if h.Capabilities == nil {
		h.Capabilities = []string{}
		for _, c := range baselineCapabilities {
			if c != "CAP_NET_RAW" {
				h.Capabilities = append(h.Capabilities, c)
			}
		}
	}
	if h.NoNewPrivileges == nil {
		h.NoNewPrivileges = ptr(true)
	}
	if h.MaskProc == nil {
		h.MaskProc = ptr(true)
	}
	if h.PidsLimit == nil {
		h.PidsLimit = ptr[int64](DefaultPidsLimit)
	}
	if h.RunAsNonRoot == "" {
		h.RunAsNonRoot = RootAllow
	}
	if h.HostNamespaces == "" {
		h.HostNamespaces = HostDeny
		if kind == KindKata {
			h.HostNamespaces = HostStrip
		}
	}
	if h.SensitiveMounts == "" {
		h.SensitiveMounts = HostDeny
	}
	if h.HostDevices == "" {
		h.HostDevices = HostDeny
	}
	if h.Hooks == "" {
		h.Hooks = HostDeny
	}
	if h.AllowedHooks == nil {
		h.AllowedHooks = []string{}
	}
	if h.CgroupsPath == "" {
		h.CgroupsPath = HostDeny
	}
	if h.UnknownFields == "" {
		h.UnknownFields = HostDeny
	}
	if h.AllowAnnotations == nil {
		h.AllowAnnotations = []string{}
	}
}

func ptr[T any](v T) *T { return &v }

// hardening validates the [tier.NAME.hardening] table of t.
func (v *validator) hardening(key string, t *Tier) {
	h := t.Hardening
	if h == nil {
		return
	}
	key += ".hardening"
	switch h.Seccomp {
	case SeccompRuntimeDefault, SeccompStrict, SeccompKeep:
	default:
		if !h.Seccomp.IsFile() {
			v.errorf(key+".seccomp", ErrInvalidValue, "%q: use %q, %q, %q or the absolute path of an OCI seccomp profile",
				h.Seccomp, SeccompRuntimeDefault, SeccompStrict, SeccompKeep)
		}
	}
	for i, c := range h.Capabilities {
		if c == AllCapabilities {
			if len(h.Capabilities) > 1 {
				v.errorf(fmt.Sprintf("%s.capabilities[%d]", key, i), ErrInvalidValue, "%q allows every capability: write it alone", AllCapabilities)
			}
			continue
		}
		if _, ok := CanonicalCapability(c); !ok {
			v.errorf(fmt.Sprintf("%s.capabilities[%d]", key, i), ErrInvalidValue, "%q is not a Linux capability: use names such as CAP_CHOWN or NET_BIND_SERVICE, or %q", c, AllCapabilities)
		}
	}
	if h.PidsLimit != nil && *h.PidsLimit < 0 {
		v.errorf(key+".pids_limit", ErrInvalidValue, "%d: use a positive limit, or 0 to keep the spec's", *h.PidsLimit)
	}
	if _, _, isUser := h.RunAsNonRoot.User(); !isUser && h.RunAsNonRoot != RootAllow && h.RunAsNonRoot != RootDeny {
		v.errorf(key+".run_as_non_root", ErrInvalidValue, "%q: use %q, %q, or the user to run root processes as, \"UID\" or \"UID:GID\" (e.g. \"65534:65534\")",
			h.RunAsNonRoot, RootAllow, RootDeny)
	}
	v.hostAccess(key+".host_namespaces", h.HostNamespaces, HostDeny, HostStrip, HostAllow)
	v.hostAccess(key+".sensitive_mounts", h.SensitiveMounts, HostDeny, HostAllow)
	v.hostAccess(key+".host_devices", h.HostDevices, HostDeny, HostAllow)
	v.hostAccess(key+".hooks", h.Hooks, HostDeny, HostStrip, HostAllow)
	v.hostAccess(key+".cgroups_path", h.CgroupsPath, HostDeny, HostAllow)
	v.hostAccess(key+".unknown_fields", h.UnknownFields, HostDeny, HostAllow)
	for i, p := range h.AllowedHooks {
		if !path.IsAbs(p) || path.Clean(p) != p {
			v.errorf(fmt.Sprintf("%s.allowed_hooks[%d]", key, i), ErrInvalidValue, "%q: give the clean absolute path of the hook program", p)
		}
	}
	kind := t.Kind()
	if h.UserNamespace && kind != KindRunc {
		v.errorf(key+".user_namespace", ErrNotForRuntime, "user namespaces are set up by Triage for runc runtimes only, not %q: remove user_namespace", t.Runtime)
	}
	switch {
	case h.ApparmorProfile == "":
	case kind == KindGVisor || kind == KindKata:
		v.errorf(key+".apparmor_profile", ErrNotForRuntime, "%s has no AppArmor (gVisor ignores it, a Kata guest has none): remove apparmor_profile", t.Runtime)
	case h.ApparmorProfile == "unconfined" || strings.ContainsAny(h.ApparmorProfile, " \t\n"):
		v.errorf(key+".apparmor_profile", ErrInvalidValue, "%q: name a profile loaded on the host, or remove the key to keep the spec's", h.ApparmorProfile)
	}
	for i, prefix := range h.AllowAnnotations {
		if strings.TrimSpace(prefix) == "" {
			v.errorf(fmt.Sprintf("%s.allow_annotations[%d]", key, i), ErrInvalidValue, "empty prefix: it would let every annotation through; name a prefix such as \"io.katacontainers.config.\"")
		}
	}
}

func (v *validator) hostAccess(key string, got HostAccess, allowed ...HostAccess) {
	for _, a := range allowed {
		if got == a {
			return
		}
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = strconv.Quote(string(a))
	}
	v.errorf(key, ErrInvalidValue, "%q is not allowed: use %s", got, strings.Join(names, ", "))
}

// loadProfiles reads the seccomp profile files the tiers name, so a missing or malformed
// profile fails at load (and in `triage check`) rather than at container start.
func (p *Policy) loadProfiles() error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(p.Tiers)) {
		h := p.Tiers[name].Hardening
		if h == nil || !h.Seccomp.IsFile() {
			continue
		}
		key := "tier." + name + ".hardening.seccomp"
		prof, err := readProfile(path.Clean(string(h.Seccomp)))
		if err != nil {
			errs = append(errs, p.errorAt(key, ErrInvalidValue, fmt.Sprintf("%v: give the absolute path of a JSON OCI seccomp profile (linux.seccomp)", err)))
			continue
		}
		h.SeccompProfile = prof
	}
	return errors.Join(errs...)
}

func readProfile(name string) (*specs.LinuxSeccomp, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxProfileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxProfileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, maxProfileSize)
	}
	var prof specs.LinuxSeccomp
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&prof); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if prof.DefaultAction == "" {
		return nil, fmt.Errorf("%s has no defaultAction", name)
	}
	allows := func(a specs.LinuxSeccompAction) bool { return a == specs.ActAllow || a == specs.ActLog }
	if allows(prof.DefaultAction) && !slices.ContainsFunc(prof.Syscalls, func(r specs.LinuxSyscall) bool { return !allows(r.Action) }) {
		return nil, fmt.Errorf("%s allows every syscall (use seccomp = %q to keep a spec unconfined)", name, SeccompKeep)
	}
	return &prof, nil
}
