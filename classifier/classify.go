package classifier

import (
	"fmt"
	"strings"

	"github.com/triage-runtime/triage/policy"
)

// Classify decides the tier of a workload that starts a pod (or runs on its own): the
// first matching rule, or the default tier, then the workload's own tier requests.
func Classify(p *policy.Policy, f Facts) Decision {
	return audited(p, classify(p, f))
}

// classify is Classify as enforcement decides, audit mode aside.
func classify(p *policy.Policy, f Facts) Decision {
	findings := Findings(f)
	d := decide(p, &f, findings)
	d.Findings = findings
	d.Reason = Bound(d.Reason)
	return d
}

// audited runs the workload in the policy's audit tier, and records d as what enforcement
// would do, when d's rule (or the whole policy) is in audit mode and d does something else.
// A spec that cannot be classified is denied whatever the mode: nothing could run it.
func audited(p *policy.Policy, d Decision) Decision {
	if d.Would != nil || d.Rule == RuleInvalidSpec || !p.Audits(d.Rule) {
		return d
	}
	t, ok := p.Tier(p.AuditTier)
	if !ok {
		return d
	}
	return runInstead(d, t.Name, t.Runtime, "the audit tier")
}

// runInstead runs the workload in tier (with runtime) and records d, what enforcement
// would do, when that is something else; where names the tier in the reason.
func runInstead(d Decision, tier, runtime, where string) Decision {
	if d.Action == ActionRun && d.Tier == tier {
		return d
	}
	would := d
	would.Findings = nil
	return Decision{
		Action: ActionRun, Tier: tier, Runtime: runtime, Rule: d.Rule,
		Reason:   Bound(fmt.Sprintf("audit mode: would %s (%s); runs in %s %q", d.Summary(), d.Reason, where, tier)),
		Findings: d.Findings, Would: &would,
	}
}

// CheckMember decides a later container of a pod that already runs in pod.Tier. A pod's
// tier cannot change, so a container that needs a stronger tier is denied rather than run
// with less isolation than the policy asks for; one that needs the same or a weaker tier
// runs in the pod's tier.
func CheckMember(p *policy.Policy, pod Decision, f Facts) Decision {
	enforced := pod
	if pod.Would != nil {
		enforced = *pod.Would
	}
	e := checkMember(p, enforced, f)
	switch {
	case e.Action == ActionRun && pod.Would == nil:
		return e
	case e.Action == ActionRun || p.Audits(e.Rule) && e.Rule != RuleInvalidSpec:
		// A member runs in the tier its pod runs in, the audit tier when the pod's decision
		// is in audit; what enforcement would do is recorded.
		return runInstead(e, pod.Tier, pod.Runtime, "its pod's tier")
	}
	return e
}

// checkMember is CheckMember as enforcement decides, for a pod in its enforced tier.
func checkMember(p *policy.Policy, pod Decision, f Facts) Decision {
	d := classify(p, f)
	if d.Action != ActionRun {
		return d
	}
	if pod.Action != ActionRun {
		return withFindings(deny(pod.Rule, "its pod was denied: "+pod.Reason), d.Findings)
	}
	podTier, ok := p.Tier(pod.Tier)
	if !ok {
		return withFindings(deny(RulePolicy, fmt.Sprintf("its pod runs in tier %q, which the policy no longer defines: restart the pod", pod.Tier)), d.Findings)
	}
	need := p.Tiers[d.Tier]
	if need.Strength > podTier.Strength {
		return withFindings(deny(d.Rule, fmt.Sprintf(
			"the container needs tier %q (%s) but its pod runs in the weaker tier %q, and a pod's tier is fixed when the pod starts: request %s=%s on the pod",
			d.Tier, d.Reason, pod.Tier, TierRequestKey, d.Tier)), d.Findings)
	}
	if d.Tier != pod.Tier {
		d.Reason += fmt.Sprintf("; runs in its pod's tier %q", pod.Tier)
	}
	d.Tier, d.Runtime = pod.Tier, pod.Runtime
	d.Reason = Bound(d.Reason)
	return d
}

func withFindings(d Decision, findings []Finding) Decision {
	d.Findings = findings
	return d
}

func decide(p *policy.Policy, f *Facts, findings []Finding) Decision {
	if f.Spec == nil || f.Spec.Process == nil {
		return deny(RuleInvalidSpec, findings[0].Evidence+": the workload cannot be classified")
	}
	s := f.subject(findings)
	d := ruleDecision(p, s)
	// CRI records a container's image as the first name of its image id, which can be
	// another tag of the same content than the one the pod asked for; the kubelet's name is
	// in the spec. Rules see both, and the stronger outcome stands.
	if asked := f.annotations()[AnnotationImageName]; f.cri() && asked != "" && asked != s.Image {
		alt := *s
		alt.Image = asked
		d = stronger(p, d, ruleDecision(p, &alt))
	}
	if d.Action != ActionRun {
		return d
	}
	return applyRequests(p, f, d)
}

// stronger returns the decision that isolates more: a denial, else the stronger tier
// (a on a tie).
func stronger(p *policy.Policy, a, b Decision) Decision {
	switch {
	case a.Action != ActionRun:
		return a
	case b.Action != ActionRun:
		return b
	case p.Tiers[b.Tier].Strength > p.Tiers[a.Tier].Strength:
		return b
	}
	return a
}

// ruleDecision applies the first matching rule, or the default tier.
func ruleDecision(p *policy.Policy, s *policy.Subject) Decision {
	for _, r := range p.Rules {
		ok, err := r.Matches(s)
		if err != nil {
			return deny(r.Name, fmt.Sprintf("the rule's expression failed (%v), so the policy cannot be applied: fix the expression", err))
		}
		if !ok {
			continue
		}
		if r.Action == policy.ActionDeny {
			return deny(r.Name, r.Reason)
		}
		return run(p, r.Tier, r.Name, r.Reason)
	}
	return run(p, p.DefaultTier, RuleDefault, "no rule matched: the policy's default tier")
}

func run(p *policy.Policy, tier, rule, reason string) Decision {
	t, ok := p.Tier(tier)
	if !ok {
		return deny(RulePolicy, fmt.Sprintf("rule %q names tier %q, which the policy does not define", rule, tier))
	}
	return Decision{Action: ActionRun, Tier: t.Name, Runtime: t.Runtime, Rule: rule, Reason: reason}
}

// request is a triage.io/tier request made by the workload's author.
type request struct {
	source string // "annotation" or "label"
	tier   string
}

func (r request) String() string {
	return fmt.Sprintf("%s %s=%q", r.source, TierRequestKey, r.tier)
}

func requests(f *Facts) []request {
	var out []request
	if t := f.annotations()[TierRequestKey]; t != "" {
		out = append(out, request{"annotation", t})
	}
	if t := f.Labels[TierRequestKey]; t != "" {
		out = append(out, request{"label", t})
	}
	return out
}

// applyRequests honours requests for a stronger tier than the rules gave and refuses
// requests for a weaker one, by policy.OnDowngrade.
func applyRequests(p *policy.Policy, f *Facts, ruled Decision) Decision {
	base := p.Tiers[ruled.Tier]
	best, bestTier := ruled, base
	var ignored []string
	for _, rq := range requests(f) {
		want, ok := p.Tier(rq.tier)
		switch {
		case !ok:
			return deny(RuleRequest, fmt.Sprintf("%s names no tier of this policy: use one of %s", rq, strings.Join(p.TierNames(), ", ")))
		case want.Strength > bestTier.Strength:
			best, bestTier = Decision{
				Action: ActionRun, Tier: want.Name, Runtime: want.Runtime, Rule: RuleRequest,
				Reason: fmt.Sprintf("%s asks for stronger isolation than tier %q (rule %q): honoured", rq, base.Name, ruled.Rule),
			}, want
		case want.Strength < base.Strength && p.OnDowngrade == policy.DowngradeIgnore:
			ignored = append(ignored, fmt.Sprintf("ignored %s: weaker than tier %q (on_downgrade = %q)", rq, base.Name, p.OnDowngrade))
		case want.Strength < base.Strength:
			return deny(RuleRequest, fmt.Sprintf(
				"%s asks for weaker isolation than tier %q, which rule %q gives (%s); a workload may raise its isolation, never lower it: remove the %s",
				rq, base.Name, ruled.Rule, ruled.Reason, rq.source))
		}
	}
	if len(ignored) > 0 {
		best.Reason += "; " + strings.Join(ignored, "; ")
	}
	return best
}
