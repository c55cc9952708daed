package classifier

import (
	"strings"
	"testing"

	"github.com/triage-runtime/triage/policy"
)

const auditRules = `default_tier = "trusted"
audit_tier = "trusted"
@MODE@

[tier.trusted]
strength = 10
runtime = "io.containerd.runc.v2"

[tier.sandboxed]
strength = 20
runtime = "io.containerd.runsc.v1"

[[rule]]
name = "no-privileged"
action = "deny"
reason = "privileged containers are not allowed"
@RULE_MODE@
  [rule.match]
  findings = ["privileged"]

[[rule]]
name = "ci-images"
tier = "sandboxed"
reason = "CI images run under gVisor"
@RULE_MODE@
  [rule.match]
  images = ["ci.example/*"]
`

func auditPolicy(t *testing.T, mode, ruleMode string) *policy.Policy {
	t.Helper()
	text := strings.NewReplacer("@MODE@", mode, "@RULE_MODE@", ruleMode).Replace(auditRules)
	p, err := policy.Parse("audit.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func privileged(f *Facts) {
	f.Spec.Process.Capabilities.Bounding = append(f.Spec.Process.Capabilities.Bounding, policy.CapabilityNames()...)
}

// TestAuditMode: in audit mode a decision is recorded as what enforcement would do, and the
// workload runs in the audit tier; switching the mode to enforce applies exactly what was
// recorded.
func TestAuditMode(t *testing.T) {
	cases := []struct {
		name      string
		facts     Facts
		wouldTier string // "" for a denial
		recorded  bool   // a Would is recorded
	}{
		{"would deny", facts(privileged), "", true},
		{"would route to gVisor", facts(image("ci.example/builder:1")), "sandboxed", true},
		{"runs where it would run anyway", facts(), "trusted", false},
	}
	for _, mode := range []struct{ name, global, rule string }{
		{"policy in audit", `mode = "audit"`, ""},
		{"rules in audit", "", `mode = "audit"`},
	} {
		audit, enforce := auditPolicy(t, mode.global, mode.rule), auditPolicy(t, "", "")
		for _, tc := range cases {
			t.Run(mode.name+"/"+tc.name, func(t *testing.T) {
				d := Classify(audit, tc.facts)
				if d.Action != ActionRun || d.Tier != "trusted" || (d.Would != nil) != tc.recorded {
					t.Fatalf("decision %s/%q, would %+v; want a run in the audit tier, recorded %t", d.Action, d.Tier, d.Would, tc.recorded)
				}
				enforced := Classify(enforce, tc.facts)
				if !tc.recorded {
					return
				}
				if d.Would.Action != enforced.Action || d.Would.Tier != enforced.Tier || d.Would.Rule != enforced.Rule || d.Would.Reason != enforced.Reason {
					t.Errorf("recorded %+v, but enforcement does %+v", *d.Would, enforced)
				}
				if d.Would.Tier != tc.wouldTier || !strings.HasPrefix(d.Reason, "audit mode: would ") {
					t.Errorf("would tier %q, reason %q", d.Would.Tier, d.Reason)
				}
			})
		}
	}
}

func TestAuditModeKeepsEnforcedRulesAndInvalidSpecs(t *testing.T) {
	p, err := policy.Parse("p.toml", []byte(strings.Replace(strings.NewReplacer("@MODE@", "", "@RULE_MODE@", "").Replace(auditRules),
		"reason = \"CI images run under gVisor\"", "reason = \"CI images run under gVisor\"\nmode = \"audit\"", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if d := Classify(p, facts(privileged)); d.Action != ActionDeny || d.Would != nil {
		t.Errorf("an enforced rule's denial: %s, would %+v", d.Action, d.Would)
	}
	if d := Classify(p, facts(image("ci.example/x"))); d.Action != ActionRun || d.Tier != "trusted" || d.Would == nil {
		t.Errorf("an audited rule's routing: %s/%q, would %+v", d.Action, d.Tier, d.Would)
	}
	if d := Classify(auditPolicy(t, `mode = "audit"`, ""), Facts{}); d.Action != ActionDeny {
		t.Errorf("a missing spec in audit mode: %s, want deny", d.Action)
	}
}

// TestAuditModeMembers: a pod's later containers run in the tier the pod runs in, and what
// enforcement would do with them is recorded.
func TestAuditModeMembers(t *testing.T) {
	p := auditPolicy(t, `mode = "audit"`, "")
	pod := Classify(p, facts(image("ci.example/builder:1")))
	if pod.Tier != "trusted" || pod.Would == nil || pod.Would.Tier != "sandboxed" {
		t.Fatalf("pod decision %+v", pod)
	}
	m := CheckMember(p, pod, facts(privileged))
	if m.Action != ActionRun || m.Tier != "trusted" || m.Would == nil || m.Would.Action != ActionDeny {
		t.Errorf("privileged member of an audited pod: %s/%q, would %+v; want a run in the pod's tier, recorded as a denial", m.Action, m.Tier, m.Would)
	}
	m = CheckMember(p, pod, facts(image("ci.example/builder:1")))
	if m.Action != ActionRun || m.Tier != "trusted" || m.Would == nil || m.Would.Tier != "sandboxed" {
		t.Errorf("member like its pod: %s/%q, would %+v", m.Action, m.Tier, m.Would)
	}
}
