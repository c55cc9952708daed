package hardening

import (
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/triage-runtime/triage/hardening/execrule"
	"github.com/triage-runtime/triage/policy"
)

// ExecRules are the rules an exec into a container of tier t follows (see execrule.Exec).
// The shim records them when the container starts; the router enforces them.
func ExecRules(t *policy.Tier) execrule.Rules {
	cfg := hardeningOf(t)
	r := execrule.Rules{
		Tier:            t.Name,
		Source:          cfg.Source,
		AllCapabilities: slices.Contains(cfg.Capabilities, policy.AllCapabilities),
		NoNewPrivileges: *cfg.NoNewPrivileges,
		RunAsNonRoot:    string(cfg.RunAsNonRoot),
		PidsLimit:       *cfg.PidsLimit,
	}
	if !r.AllCapabilities {
		for _, n := range cfg.Capabilities {
			r.AllowedCapabilities = append(r.AllowedCapabilities, execrule.Canonical(n))
		}
	}
	return r
}

// Exec hardens the process spec p of an exec into a container whose hardened spec is
// container, in tier t, as Apply hardened the container's own process (see execrule.Exec).
// It changes p in place.
func Exec(p *specs.Process, container *specs.Spec, t *policy.Tier) error {
	return execrule.Exec(p, container, ExecRules(t))
}

// Update checks the resources r of a task Update into a container of tier t (see
// execrule.Update): it may change limits, but it cannot give the container device access,
// which the tier checked at create, nor raise or remove the tier's pids_limit.
func Update(r *specs.LinuxResources, t *policy.Tier) error {
	return execrule.Update(r, ExecRules(t))
}
