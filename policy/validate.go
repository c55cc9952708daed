package policy

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"
)

// SelfRuntime is Triage's own runtime type; no tier may delegate to it.
const SelfRuntime = "io.containerd.triage.v2"

var (
	tierNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	runtimeRE  = regexp.MustCompile(`^io\.containerd\.[a-z0-9][a-z0-9_-]*\.v[0-9]+$`)
)

// Validate checks the policy's values and cross-references. It changes nothing. The error
// joins one *Error per problem.
func (p *Policy) Validate() error {
	v := &validator{p: p}
	v.top()
	for _, name := range slices.Sorted(maps.Keys(p.Tiers)) {
		v.tier(name, p.Tiers[name])
	}
	v.strengths()
	names := map[string]int{}
	for i, r := range p.Rules {
		v.rule(i, r, names)
	}
	return errors.Join(v.errs...)
}

type validator struct {
	p    *Policy
	errs []error
}

func (v *validator) errorf(key string, class error, format string, args ...any) {
	v.errs = append(v.errs, v.p.errorAt(key, class, fmt.Sprintf(format, args...)))
}

// errorAt builds an *Error for key, located where the key (or its table) is written.
func (p *Policy) errorAt(key string, class error, msg string) *Error {
	pos := p.positions.lookup(key)
	if pos.Line == 0 && p.positions != nil {
		pos = Position{Line: 1, Column: 1}
	}
	return &Error{File: p.Source, Line: pos.Line, Column: pos.Column, Key: key, Msg: msg, Err: class}
}

func (v *validator) top() {
	p := v.p
	if len(p.Tiers) == 0 {
		v.errorf("tier", ErrMissingKey, "no tiers: define at least one [tier.NAME] table with strength and runtime")
	}
	switch {
	case p.DefaultTier == "":
		v.errorf("default_tier", ErrMissingKey, "default_tier is required: set it to one of the tiers (%s)", v.tierList())
	case p.Tiers[p.DefaultTier] == nil:
		v.errorf("default_tier", ErrUnknownTier, "tier %q is not defined: use one of %s", p.DefaultTier, v.tierList())
	}
	switch p.OnDowngrade {
	case DowngradeDeny, DowngradeIgnore:
	default:
		v.errorf("on_downgrade", ErrInvalidValue, "%q is not allowed: use %q or %q", p.OnDowngrade, DowngradeDeny, DowngradeIgnore)
	}
	if !path.IsAbs(p.AuditLog) {
		v.errorf("audit_log", ErrInvalidValue, "%q is not an absolute path", p.AuditLog)
	}
	v.absPath("metrics_textfile", p.MetricsTextfile)
	if p.MetricsTextfile != "" && !strings.HasSuffix(p.MetricsTextfile, ".prom") {
		v.errorf("metrics_textfile", ErrInvalidValue, "%q: node_exporter's textfile collector reads only *.prom files: end the name in .prom", p.MetricsTextfile)
	}
	v.mode("mode", p.Mode)
	audits := p.Mode == ModeAudit || slices.ContainsFunc(p.Rules, func(r *Rule) bool { return r != nil && r.Mode == ModeAudit })
	switch {
	case p.AuditTier != "" && p.Tiers[p.AuditTier] == nil:
		v.errorf("audit_tier", ErrUnknownTier, "tier %q is not defined: use one of %s", p.AuditTier, v.tierList())
	case p.AuditTier == "" && audits:
		v.errorf("audit_tier", ErrMissingKey, "audit mode needs audit_tier: the tier workloads run in while their decisions are only recorded (one of %s)", v.tierList())
	}
}

func (v *validator) mode(key string, m Mode) {
	if m != ModeEnforce && m != ModeAudit {
		v.errorf(key, ErrInvalidValue, "%q is not allowed: use %q or %q", m, ModeEnforce, ModeAudit)
	}
}

func (v *validator) tier(name string, t *Tier) {
	key := "tier." + name
	if !tierNameRE.MatchString(name) || name == string(ActionDeny) {
		v.errorf(key, ErrInvalidValue, "tier name %q: use lowercase letters, digits, '-' and '_' (and not %q)", name, ActionDeny)
	}
	switch {
	case t.Strength == 0:
		v.errorf(key+".strength", ErrMissingKey, "strength is required: a positive integer, higher means stronger isolation")
	case t.Strength < 0:
		v.errorf(key+".strength", ErrInvalidValue, "strength %d: use a positive integer", t.Strength)
	}
	switch {
	case t.Runtime == "":
		v.errorf(key+".runtime", ErrMissingKey, "runtime is required, e.g. io.containerd.runc.v2, io.containerd.runsc.v1 or io.containerd.kata.v2")
	case t.Runtime == SelfRuntime:
		v.errorf(key+".runtime", ErrInvalidValue, "%s is Triage itself: name the runtime that provides this tier", SelfRuntime)
	case !runtimeRE.MatchString(t.Runtime):
		v.errorf(key+".runtime", ErrInvalidValue, "%q is not a containerd runtime type: use io.containerd.NAME.vN, e.g. io.containerd.runsc.v1", t.Runtime)
	}
	v.absPath(key+".shim_path", t.ShimPath)
	if t.ConfigPath != "" && t.IsRunc() {
		v.errorf(key+".config_path", ErrNotForRuntime, "runc takes no config file: remove config_path, or use [%s.runc] for runc options", key)
	} else {
		v.absPath(key+".config_path", t.ConfigPath)
	}
	if t.Runc != nil {
		if !t.IsRunc() {
			v.errorf(key+".runc", ErrNotForRuntime, "[%s.runc] is only for io.containerd.runc.* runtimes, not %q: remove it", key, t.Runtime)
		}
		v.absPath(key+".runc.root", t.Runc.Root)
	}
	v.hardening(key, t)
	if t.Fallback != "" {
		fb := v.p.Tiers[t.Fallback]
		switch {
		case fb == nil:
			v.errorf(key+".fallback", ErrUnknownTier, "tier %q is not defined: use one of %s", t.Fallback, v.tierList())
		case fb.Strength <= t.Strength:
			v.errorf(key+".fallback", ErrWeakFallback, "fallback %q (strength %d) is not stronger than %q (strength %d): a fallback must never weaken isolation",
				t.Fallback, fb.Strength, name, t.Strength)
		}
	}
}

func (v *validator) absPath(key, p string) {
	if p != "" && !path.IsAbs(p) {
		v.errorf(key, ErrInvalidValue, "%q is not an absolute path", p)
	}
}

// strengths reports tiers that share a strength: the order between them would be undefined.
// The tier written later in the file is the one reported.
func (v *validator) strengths() {
	tiers := slices.SortedFunc(maps.Values(v.p.Tiers), func(a, b *Tier) int {
		pa, pb := v.p.positions.lookup("tier."+a.Name), v.p.positions.lookup("tier."+b.Name)
		return cmp.Or(cmp.Compare(pa.Line, pb.Line), strings.Compare(a.Name, b.Name))
	})
	seen := map[int]string{}
	for _, t := range tiers {
		if t.Strength <= 0 {
			continue
		}
		if other, ok := seen[t.Strength]; ok {
			v.errorf("tier."+t.Name+".strength", ErrDuplicate, "strength %d is also the strength of tier %q: give each tier its own", t.Strength, other)
			continue
		}
		seen[t.Strength] = t.Name
	}
}

func (v *validator) rule(i int, r *Rule, names map[string]int) {
	key := fmt.Sprintf("rule[%d]", i)
	switch prev, dup := names[r.Name]; {
	case r.Name == "":
		v.errorf(key+".name", ErrMissingKey, "rule %d has no name: add name = \"...\"", i+1)
	case dup:
		v.errorf(key+".name", ErrDuplicate, "rule name %q is also used by rule %d: names must be unique", r.Name, prev+1)
	default:
		names[r.Name] = i
	}
	switch r.Action {
	case ActionRun:
		switch {
		case r.Tier == "":
			v.errorf(key+".tier", ErrMissingKey, "rule %q runs workloads but names no tier: set tier to one of %s", r.Name, v.tierList())
		case v.p.Tiers[r.Tier] == nil:
			v.errorf(key+".tier", ErrUnknownTier, "rule %q: tier %q is not defined: use one of %s", r.Name, r.Tier, v.tierList())
		}
	case ActionDeny:
		if r.Tier != "" {
			v.errorf(key+".tier", ErrInvalidValue, "rule %q denies, so it takes no tier: remove tier or set action = %q", r.Name, ActionRun)
		}
	default:
		v.errorf(key+".action", ErrInvalidValue, "rule %q: action %q is not allowed: use %q or %q", r.Name, r.Action, ActionRun, ActionDeny)
	}
	if strings.TrimSpace(r.Reason) == "" {
		v.errorf(key+".reason", ErrMissingKey, "rule %q has no reason: say why, the user who is refused or sandboxed sees it", r.Name)
	}
	v.match(key+".match", &r.Match)
	v.mode(key+".mode", r.Mode)
}

func (v *validator) match(key string, m *Match) {
	v.globs(key+".namespaces", m.Namespaces)
	v.globs(key+".containerd_namespaces", m.ContainerdNamespaces)
	v.globs(key+".images", m.Images)
	v.selectors(key+".labels", m.Labels)
	v.selectors(key+".annotations", m.Annotations)
	v.selectors(key+".namespace_labels", m.NamespaceLabels)
	for j, id := range m.Findings {
		if !slices.Contains(findingIDs, id) {
			v.errorf(fmt.Sprintf("%s.findings[%d]", key, j), ErrUnknownFinding, "%q is not a finding: use one of %s", id, strings.Join(findingIDs, ", "))
		}
	}
}

func (v *validator) globs(key string, patterns []string) {
	for j, pattern := range patterns {
		v.glob(fmt.Sprintf("%s[%d]", key, j), pattern)
	}
}

func (v *validator) selectors(key string, sel map[string]string) {
	for _, k := range slices.Sorted(maps.Keys(sel)) {
		if k == "" {
			v.errorf(key, ErrInvalidValue, "empty key: name the key to select on")
			continue
		}
		v.glob(key+"."+k, sel[k])
	}
}

func (v *validator) glob(key, pattern string) {
	if _, err := path.Match(pattern, ""); err != nil {
		v.errorf(key, ErrBadGlob, "%q: %v (globs use Go path.Match syntax: * ? [a-z] and \\ to escape)", pattern, err)
	}
}

func (v *validator) tierList() string {
	names := v.p.TierNames()
	if len(names) == 0 {
		return "(none defined)"
	}
	return `"` + strings.Join(names, `", "`) + `"`
}
