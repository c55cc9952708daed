package execrule

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Root outcomes of RunAsNonRoot.
const (
	RootNotApplicable = "not-applicable" // the process is not host root
	RootKept          = "kept"           // root allowed
	RootReplaced      = "enforced"       // root replaced by the configured user
)

// RunAsNonRoot applies a run_as_non_root setting ("allow", "deny" or "UID[:GID]") to the
// user u of a process of spec s. It returns the outcome, or a refusal message for "deny".
func RunAsNonRoot(s *specs.Spec, u *specs.User, setting string) (outcome, refusal string) {
	switch {
	case !IsHostRoot(s, u.UID):
		return RootNotApplicable, ""
	case setting == "allow" || setting == "":
		return RootKept, ""
	case setting == "deny":
		return "", `the process runs as root (uid 0): set runAsUser / USER to a non-zero uid, or set run_as_non_root = "allow" or to a "UID:GID"`
	}
	uid, gid, ok := ParseUser(setting)
	if !ok {
		return "", fmt.Sprintf("run_as_non_root = %q is neither allow, deny nor UID[:GID]", setting)
	}
	u.UID, u.GID = uid, gid
	u.AdditionalGids = slices.DeleteFunc(u.AdditionalGids, func(g uint32) bool { return g == 0 })
	return RootReplaced, ""
}

// ParseUser reads "UID[:GID]" (gid defaults to uid).
func ParseUser(s string) (uid, gid uint32, ok bool) {
	u, g, hasGID := strings.Cut(s, ":")
	uid64, err := strconv.ParseUint(u, 10, 32)
	if err != nil {
		return 0, 0, false
	}
	gid64 := uid64
	if hasGID {
		if gid64, err = strconv.ParseUint(g, 10, 32); err != nil {
			return 0, 0, false
		}
	}
	return uint32(uid64), uint32(gid64), true
}

// IsHostRoot reports whether uid is root on the host: uid 0 with no user namespace, or with
// one that maps it to host uid 0. A user namespace joined by path (a pod's) is taken as
// remapped: its mapping is not in this spec.
func IsHostRoot(s *specs.Spec, uid uint32) bool {
	if uid != 0 {
		return false
	}
	if s.Linux == nil {
		return true
	}
	i := slices.IndexFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.UserNamespace })
	if i < 0 {
		return true
	}
	if s.Linux.Namespaces[i].Path != "" {
		return false
	}
	for _, m := range s.Linux.UIDMappings {
		if m.ContainerID == 0 && m.Size > 0 {
			return m.HostID == 0
		}
	}
	return true
}
