package classifier

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/triage-runtime/triage/policy"
)

// How says what Triage does with a field of the OCI spec.
type How string

const (
	// Judged: a risk check reads it (the findings named).
	Judged How = "judged"
	// Hardened: a hardening control rewrites or refuses it (the controls named), and a
	// risk check reads it.
	Hardened How = "hardened"
	// Passed: harmless as the runtime applies it; Why says why.
	Passed How = "passed"
)

// Field is what Triage does with one field of the OCI runtime spec.
type Field struct {
	// Path is the field's JSON path ("linux.cgroupsPath"); it covers every field below it.
	Path string
	How  How
	// By names the findings and hardening controls that read or rewrite it.
	By []string
	// Why says what the field does and why that is judged so.
	Why string
}

// Inventory is every field of the OCI runtime spec (the version in go.mod), each judged,
// hardened or passed. A field missing here is unknown: UnknownFields reports it, and the
// finding unknown-field refuses it in tiers that do not allow unknown fields. A test
// checks that every field of the spec's Go types is listed.
var Inventory = []Field{
	{"ociVersion", Passed, nil, "the spec's version; runc refuses versions it cannot read"},
	{"process.terminal", Passed, nil, "a pseudo-terminal from the container's own devpts"},
	{"process.consoleSize", Passed, nil, "the terminal's size"},
	{"process.user", Hardened, []string{policy.FindingRunAsRoot, "run_as_non_root"}, "uid 0 without a user namespace is host root"},
	{"process.args", Passed, nil, "runs inside the container"},
	{"process.commandLine", Passed, nil, "Windows only; runc ignores it"},
	{"process.env", Passed, nil, "the process's environment, inside the container"},
	{"process.cwd", Passed, nil, "resolved inside the container's root"},
	{"process.capabilities", Hardened, []string{policy.FindingPrivileged, policy.FindingDangerousCapability, policy.FindingNonBaseline, "capabilities"}, "every set (bounding, effective, permitted, inheritable, ambient) becomes requested ∩ the tier's allow-list"},
	{"process.rlimits", Passed, nil, "per-process limits; memory and process counts are bounded by the cgroup (pids_limit)"},
	{"process.noNewPrivileges", Hardened, []string{policy.FindingPrivilegeEscalation, "no_new_privileges"}, "setuid binaries and file capabilities"},
	{"process.apparmorProfile", Hardened, []string{policy.FindingApparmorUnconfined, "apparmor_profile"}, "the MAC profile"},
	{"process.oomScoreAdj", Passed, nil, "who the OOM killer picks first; the container's memory is bounded by its cgroup"},
	{"process.scheduler", Passed, nil, "scheduling policy; real-time classes need CAP_SYS_NICE, which the capability allow-list drops"},
	{"process.selinuxLabel", Passed, nil, "the SELinux label; an exec keeps its container's"},
	{"process.ioPriority", Passed, nil, "I/O priority; the real-time class needs CAP_SYS_ADMIN or CAP_SYS_NICE"},
	{"process.execCPUAffinity", Passed, nil, "CPUs the runtime's exec runs on, within the container's cpuset"},
	{"root.path", Judged, []string{policy.FindingUnmanagedRootfs, policy.FindingSensitiveHostMount}, "resolved against the bundle: a root that is not containerd's snapshot, or a sensitive host folder"},
	{"root.readonly", Hardened, []string{policy.FindingWritableRootfs, "read_only_rootfs"}, "a writable root filesystem"},
	{"hostname", Passed, nil, "set in the container's UTS namespace (a host UTS namespace is a finding)"},
	{"domainname", Passed, nil, "set in the container's UTS namespace"},
	{"mounts", Hardened, []string{policy.FindingSensitiveHostMount, "sensitive_mounts"}, "each mount resolved as the runtime will (bundle-relative sources, symlinks, overlay options, filesystem types, propagation); a bind mount's source is pinned to the path judged"},
	{"hooks", Hardened, []string{policy.FindingHooks, "hooks"}, "host programs the runtime runs as root"},
	{"annotations", Hardened, []string{"allow_annotations"}, "requests (triage.io/tier) and delegate-control keys, which are stripped"},
	{"linux.uidMappings", Judged, []string{policy.FindingRunAsRoot}, "where container root lands on the host"},
	{"linux.gidMappings", Judged, []string{policy.FindingRunAsRoot}, "as uidMappings, for groups"},
	{"linux.sysctl", Judged, []string{policy.FindingUnsafeSysctl}, "kernel parameters; only the Kubernetes safe set is namespaced"},
	{"linux.resources", Hardened, []string{policy.FindingHostDevice, "pids_limit", "host_devices"}, "device cgroup rules are judged; the pids limit is capped; other limits only bound the container"},
	{"linux.cgroupsPath", Judged, []string{policy.FindingHostCgroup, "cgroups_path"}, "an existing host cgroup would be joined, changed and removed"},
	{"linux.namespaces", Hardened, []string{policy.FindingHostNamespace, "host_namespaces"}, "paths resolved by identity: a path to the host's namespace is the host's"},
	{"linux.devices", Hardened, []string{policy.FindingHostDevice, "host_devices"}, "host device nodes"},
	{"linux.netDevices", Hardened, []string{policy.FindingHostDevice, "host_devices"}, "host network interfaces moved into the container"},
	{"linux.seccomp", Hardened, []string{policy.FindingSeccompUnconfined, "seccomp"}, "the syscall filter; the tier's profile replaces it, listenerPath included"},
	{"linux.rootfsPropagation", Judged, []string{policy.FindingSensitiveHostMount}, "shared propagation sends the container's mounts to the host"},
	{"linux.maskedPaths", Hardened, []string{policy.FindingUnmaskedProc, "mask_proc"}, "kernel interfaces in /proc and /sys"},
	{"linux.readonlyPaths", Hardened, []string{policy.FindingUnmaskedProc, "mask_proc"}, "kernel interfaces in /proc and /sys"},
	{"linux.mountLabel", Passed, nil, "the SELinux label of the container's mounts"},
	{"linux.intelRdt", Passed, nil, "cache and memory-bandwidth allocation for the container"},
	{"linux.memoryPolicy", Passed, nil, "NUMA policy of the container's memory"},
	{"linux.personality", Passed, nil, "execution domain; the strict seccomp profile refuses personality()"},
	{"linux.timeOffsets", Passed, nil, "offsets of the container's own time namespace"},
}

// otherPlatforms are spec sections for other platforms or VM runtimes. runc ignores them,
// but a VM runtime may not (vm names a hypervisor and kernel to run), so they are judged
// as unknown fields.
var otherPlatforms = []string{"solaris", "windows", "vm", "zos", "freebsd"}

// DecodeSpec decodes a config.json as the runtime (Go's encoding/json, in runc and runsc)
// will, and lists its unknown fields (see UnknownFields) with the fields of other
// platforms. A spec whose fields the Go types all know, as containerd writes them, is
// decoded once; only another one is walked field by field as well, which costs about twice
// a decode. A key the runtime matches to a field case-insensitively ("Process") is that
// field, as the runtime reads it.
func DecodeSpec(data []byte) (*specs.Spec, []string, error) {
	var s specs.Spec
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if dec.Decode(&s) == nil && !dec.More() && s.Solaris == nil && s.Windows == nil && s.VM == nil && s.ZOS == nil && s.FreeBSD == nil {
		return &s, nil, nil
	}
	s = specs.Spec{}
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, nil, err
	}
	unknown, err := UnknownFields(data)
	if err != nil {
		return nil, nil, err
	}
	if len(unknown) == 0 {
		unknown = nil
	}
	return &s, unknown, nil
}

// maxUnknownFields bounds how many unknown fields are reported.
const maxUnknownFields = 10

// UnknownFields returns the JSON paths of the fields of a config.json that the spec's Go
// types do not have (a newer spec, a typo the runtime may read otherwise), and the
// sections of other platforms, at most maxUnknownFields of them. It returns an error when
// data is not a JSON object.
func UnknownFields(data []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	var out []string
	walkUnknown("", doc, reflect.TypeFor[specs.Spec](), &out)
	for _, p := range otherPlatforms {
		if _, ok := doc[p]; ok && doc[p] != nil {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	if len(out) > maxUnknownFields {
		out = append(out[:maxUnknownFields], fmt.Sprintf("and %d more", len(out)-maxUnknownFields))
	}
	return out, nil
}

func walkUnknown(at string, v any, t reflect.Type, out *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return
		}
		fields := jsonFields(t)
		for k, sub := range obj {
			f, known := fields[k]
			switch {
			case !known:
				*out = append(*out, join(at, k))
			case at == "" && slices.Contains(otherPlatforms, k):
			default:
				walkUnknown(join(at, k), sub, f, out)
			}
		}
	case reflect.Slice, reflect.Array:
		if arr, ok := v.([]any); ok {
			for i, e := range arr {
				walkUnknown(fmt.Sprintf("%s[%d]", at, i), e, t.Elem(), out)
			}
		}
	case reflect.Map:
		if obj, ok := v.(map[string]any); ok {
			for k, e := range obj {
				walkUnknown(join(at, k), e, t.Elem(), out)
			}
		}
	}
}

// jsonFields maps a struct's JSON names to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	m := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f.Type
	}
	return m
}

func join(at, k string) string {
	if at == "" {
		return k
	}
	return at + "." + k
}
