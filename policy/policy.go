// Package policy reads and checks the Triage policy file (/etc/triage/triage.toml): the
// isolation tiers a node offers and the ordered rules that route a workload to one of them.
//
// Parsing is strict: an unknown key, a reference to a tier that does not exist or an
// expression that does not compile is an error naming file:line:column, because a policy
// that is silently half-applied would route untrusted code to a weak runtime.
package policy

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Default values of optional settings. They are applied in one place, setDefaults.
const (
	// DefaultPath is where the shim and the CLI look for the policy file.
	DefaultPath = "/etc/triage/triage.toml"
	// DefaultAuditLog is the decision log used when audit_log is not set.
	DefaultAuditLog = "/var/log/triage/decisions.jsonl"
	// DefaultRuncBinary is the runc binary used when [tier.NAME.runc] binary_name is not set.
	DefaultRuncBinary = "runc"
)

// DowngradeAction says what happens when a workload asks for a weaker tier than the rules
// give it (annotation or label triage.io/tier).
type DowngradeAction string

const (
	// DowngradeDeny refuses to start the workload. The default.
	DowngradeDeny DowngradeAction = "deny"
	// DowngradeIgnore runs the workload in the tier the rules chose and records the ignored
	// request in the decision's reason.
	DowngradeIgnore DowngradeAction = "ignore"
)

// Mode says whether decisions are applied or only recorded.
type Mode string

const (
	// ModeEnforce applies every decision. The default.
	ModeEnforce Mode = "enforce"
	// ModeAudit records what enforcement would do ("would deny", "would route to
	// sandboxed") and runs the workload in the policy's audit_tier, denying nothing.
	ModeAudit Mode = "audit"
)

// RuleAction is what a matching rule does.
type RuleAction string

const (
	// ActionRun runs the workload in the rule's tier. The default.
	ActionRun RuleAction = "run"
	// ActionDeny refuses to start the workload.
	ActionDeny RuleAction = "deny"
)

// Policy is a parsed and validated policy file. Build one with Load or Parse; a Policy is
// read-only afterwards and safe for concurrent use.
type Policy struct {
	// Source names where the policy came from (a path, or "<config_body>"); used in messages.
	Source string `toml:"-"`
	// DefaultTier is the tier of a workload no rule matches. Required; must name a tier.
	DefaultTier string `toml:"default_tier"`
	// OnDowngrade is what to do with a request for a weaker tier than the rules give.
	// Default DowngradeDeny.
	OnDowngrade DowngradeAction `toml:"on_downgrade"`
	// AuditLog is the absolute path of the JSON-lines decision log. Default DefaultAuditLog.
	AuditLog string `toml:"audit_log"`
	// MetricsTextfile is the absolute path of the file Triage keeps its metrics in, in the
	// text format of node_exporter's textfile collector (a *.prom file in its
	// --collector.textfile.directory). Default "": no metrics.
	MetricsTextfile string `toml:"metrics_textfile"`
	// Mode is the policy's mode: ModeAudit puts every decision in audit, whatever its
	// rule's mode. Default ModeEnforce.
	Mode Mode `toml:"mode"`
	// AuditTier is the tier workloads run in while their decision is in audit (typically
	// a runc tier with the hardening the node had before Triage). Required when the policy
	// or a rule is in audit mode; must name a tier.
	AuditTier string `toml:"audit_tier"`
	// Tiers maps a tier name ([tier.NAME]) to its settings. At least one is required.
	Tiers map[string]*Tier `toml:"tier"`
	// Rules are the [[rule]] tables in file order; the first that matches decides.
	Rules []*Rule `toml:"rule"`

	// positions maps dotted keys ("rule[2].match.images[0]") to where they stand in the file.
	positions positions
}

// Tier is one isolation level and the delegate runtime that provides it.
type Tier struct {
	// Name is the key of the [tier.NAME] table.
	Name string `toml:"-"`
	// Strength orders tiers: higher means stronger isolation. Required, positive, unique.
	Strength int `toml:"strength"`
	// Runtime is the containerd runtime type of the delegate shim, io.containerd.NAME.vN
	// (io.containerd.runc.v2, io.containerd.runsc.v1, io.containerd.kata.v2). Required.
	Runtime string `toml:"runtime"`
	// ShimPath is the absolute path of the delegate shim binary. Default "": the shim is
	// found on PATH under the name ShimBinary returns, as containerd does.
	ShimPath string `toml:"shim_path"`
	// ConfigPath is the absolute path of the delegate's own config file (runsc TOML for
	// gVisor, configuration.toml for Kata). Default "": the delegate's default. Not allowed
	// for runc runtimes, which take no config file.
	ConfigPath string `toml:"config_path"`
	// Fallback names the tier used when this one cannot run on the node. Default "": none.
	// It must be stronger than this tier, so a fallback never weakens isolation.
	Fallback string `toml:"fallback"`
	// Runc holds the runc options ([tier.NAME.runc]). For runc runtimes it is never nil
	// after Parse (defaults filled in); for other runtimes it must be absent.
	Runc *RuncOptions `toml:"runc"`
	// Hardening is what Triage enforces on the tier's workloads ([tier.NAME.hardening]).
	// Never nil after Parse, every setting filled in (see Hardening for the defaults).
	Hardening *Hardening `toml:"hardening"`
}

// RuncOptions are the options sent to containerd-shim-runc-v2 for a runc tier.
type RuncOptions struct {
	// SystemdCgroup makes runc use the systemd cgroup driver. Default false.
	SystemdCgroup bool `toml:"systemd_cgroup"`
	// BinaryName is the runc binary, a name looked up on PATH or an absolute path.
	// Default DefaultRuncBinary.
	BinaryName string `toml:"binary_name"`
	// Root is runc's state directory (--root), absolute. Default "": runc's default.
	Root string `toml:"root"`
}

// Rule routes the workloads it matches to a tier, or denies them.
type Rule struct {
	// Name identifies the rule in decisions and the audit log. Required, unique.
	Name string `toml:"name"`
	// Action is what the rule does. Default ActionRun.
	Action RuleAction `toml:"action"`
	// Tier is the tier a matching workload runs in. Required with ActionRun, not allowed
	// with ActionDeny.
	Tier string `toml:"tier"`
	// Reason explains the decision to the user who sees it. Required.
	Reason string `toml:"reason"`
	// Match selects workloads. An empty Match matches every workload.
	Match Match `toml:"match"`
	// Mode is the rule's mode: with ModeAudit, what the rule decides is recorded and the
	// workload runs in the policy's audit_tier. Default ModeEnforce (or the policy's mode).
	Mode Mode `toml:"mode"`
}

// Audits reports whether the decisions of the rule named rule (any rule name, or the name
// of a decision no rule made) are only recorded.
func (p *Policy) Audits(rule string) bool {
	if p.Mode == ModeAudit {
		return true
	}
	i := slices.IndexFunc(p.Rules, func(r *Rule) bool { return r.Name == rule })
	return i >= 0 && p.Rules[i].Mode == ModeAudit
}

// Match selects workloads. Every field that is set must match (AND); within a list, any
// element may match (OR). Globs use path.Match syntax, where '*' does not cross '/'.
type Match struct {
	// Namespaces are globs on the Kubernetes namespace (annotation
	// io.kubernetes.cri.sandbox-namespace). A workload outside Kubernetes matches none.
	Namespaces []string `toml:"namespaces"`
	// ContainerdNamespaces are globs on the containerd namespace (k8s.io, default, ...).
	ContainerdNamespaces []string `toml:"containerd_namespaces"`
	// Images are globs on the image reference as containerd recorded it. A pattern that
	// starts with "sha256:" matches the digest of the content containerd's image record
	// holds instead. A workload without an image reference matches none.
	Images []string `toml:"images"`
	// RequireDigest matches only an image referenced by digest (NAME@sha256:…) whose
	// digest is the one containerd's image record holds, so that a local tag of other
	// content cannot pass for a registry's image. Default false.
	RequireDigest bool `toml:"require_digest"`
	// Labels select containerd container labels: the key must be present and its value
	// must match the glob.
	Labels map[string]string `toml:"labels"`
	// Annotations select OCI spec annotations, like Labels.
	Annotations map[string]string `toml:"annotations"`
	// NamespaceLabels select labels of the containerd namespace, like Labels.
	NamespaceLabels map[string]string `toml:"namespace_labels"`
	// Findings match if the workload has any of these findings (see FindingIDs).
	Findings []string `toml:"findings"`
	// Expression is a CEL expression over `facts` (see Subject) that must be true. It is
	// compiled once at load and must have type bool.
	Expression string `toml:"expression"`

	// compiled is the match compiled by Parse; nil in a Policy built otherwise, whose rules
	// then never match (Matches returns an error).
	compiled *compiledMatch
}

// Tier returns the tier named name.
func (p *Policy) Tier(name string) (*Tier, bool) {
	t, ok := p.Tiers[name]
	return t, ok
}

// TiersByStrength returns the tiers from the weakest to the strongest.
func (p *Policy) TiersByStrength() []*Tier {
	tiers := make([]*Tier, 0, len(p.Tiers))
	for _, t := range p.Tiers {
		tiers = append(tiers, t)
	}
	slices.SortFunc(tiers, func(a, b *Tier) int {
		return cmp.Or(cmp.Compare(a.Strength, b.Strength), strings.Compare(a.Name, b.Name))
	})
	return tiers
}

// TierNames returns the tier names from the weakest to the strongest tier.
func (p *Policy) TierNames() []string {
	var names []string
	for _, t := range p.TiersByStrength() {
		names = append(names, t.Name)
	}
	return names
}

// IsRunc reports whether the tier's delegate is a runc shim (io.containerd.runc.*).
func (t *Tier) IsRunc() bool {
	return strings.HasPrefix(t.Runtime, "io.containerd.runc.")
}

// Hosted tells whether the tier's containers run in Triage's own pod shim,
// which hosts containerd's runc task service: an io.containerd.runc.v2 tier
// with no shim_path. Other tiers are relayed to their delegate shim.
func (t *Tier) Hosted() bool {
	return t.Runtime == "io.containerd.runc.v2" && t.ShimPath == ""
}

// ShimBinary returns the delegate shim's binary: ShimPath if set, otherwise the name
// containerd derives from the runtime type (io.containerd.runsc.v1 ->
// containerd-shim-runsc-v1), to be looked up on PATH.
func (t *Tier) ShimBinary() string {
	if t.ShimPath != "" {
		return t.ShimPath
	}
	parts := strings.Split(t.Runtime, ".")
	if len(parts) < 2 {
		return ""
	}
	return "containerd-shim-" + parts[len(parts)-2] + "-" + parts[len(parts)-1]
}

// setDefaults fills in every optional setting left empty. It is the only place defaults
// are applied.
func (p *Policy) setDefaults() {
	if p.OnDowngrade == "" {
		p.OnDowngrade = DowngradeDeny
	}
	if p.AuditLog == "" {
		p.AuditLog = DefaultAuditLog
	}
	if p.Mode == "" {
		p.Mode = ModeEnforce
	}
	for name, t := range p.Tiers {
		if t == nil {
			t = &Tier{}
			p.Tiers[name] = t
		}
		t.Name = name
		if t.IsRunc() {
			if t.Runc == nil {
				t.Runc = &RuncOptions{}
			}
			if t.Runc.BinaryName == "" {
				t.Runc.BinaryName = DefaultRuncBinary
			}
		}
		if t.Hardening == nil {
			t.Hardening = &Hardening{}
		}
		t.Hardening.setDefaults(t.Kind())
		t.Hardening.Source = p.source("tier." + name + ".hardening")
	}
	for i, r := range p.Rules {
		if r == nil {
			r = &Rule{}
			p.Rules[i] = r
		}
		if r.Action == "" {
			r.Action = ActionRun
		}
		if r.Mode == "" {
			r.Mode = ModeEnforce
		}
	}
}

// RuleSource returns where the rule named name is declared, as "file:line:column", or ""
// when the policy has no such rule or was not parsed from a file.
func (p *Policy) RuleSource(name string) string {
	for i, r := range p.Rules {
		if r.Name == name {
			if _, ok := p.positions[fmt.Sprintf("rule[%d]", i)]; ok {
				return p.source(fmt.Sprintf("rule[%d]", i))
			}
			return ""
		}
	}
	return ""
}

// source returns where key, or its nearest written ancestor, stands as
// "file:line:column"; "" when the policy was not parsed from a file.
func (p *Policy) source(key string) string {
	pos := p.positions.lookup(key)
	if pos.Line == 0 {
		return ""
	}
	return fmt.Sprintf("%s:%d:%d", p.Source, pos.Line, pos.Column)
}
