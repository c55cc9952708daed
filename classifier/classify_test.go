package classifier

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/triage-runtime/triage/policy"
)

// tiers is the preamble of the test policies: three tiers, on_downgrade left to fill in.
const tiers = `
default_tier = "trusted"
on_downgrade = %q

[tier.trusted]
strength = 10
runtime = "io.containerd.runc.v2"

[tier.sandboxed]
strength = 20
runtime = "io.containerd.runsc.v1"

[tier.isolated]
strength = 30
runtime = "io.containerd.kata.v2"
`

// policyWith parses the three test tiers followed by rules.
func policyWith(t testing.TB, onDowngrade policy.DowngradeAction, rules string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse("test.toml", []byte(fmt.Sprintf(tiers, onDowngrade)+rules))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const testRules = `
[[rule]]
name = "ci-images"
tier = "sandboxed"
reason = "CI images run under gVisor"
  [rule.match]
  images = ["ci.example/*"]

[[rule]]
name = "no-sys-admin"
action = "deny"
reason = "CAP_SYS_ADMIN is not allowed"
  [rule.match]
  findings = ["dangerous-capability"]
  expression = '"CAP_SYS_ADMIN" in facts.annotations'

[[rule]]
name = "team-label"
tier = "isolated"
reason = "team red runs in micro-VMs"
  [rule.match]
  labels = { team = "red*" }

[[rule]]
name = "pinned-digest"
tier = "trusted"
reason = "pinned base image"
  [rule.match]
  images = ["sha256:0123*"]
`

func parsePolicy(t testing.TB, onDowngrade policy.DowngradeAction) *policy.Policy {
	return policyWith(t, onDowngrade, testRules)
}

// facts returns facts of a safe workload changed by the given options.
func facts(opts ...func(*Facts)) Facts {
	f := Facts{ID: "c1", Spec: safeSpec(), Namespace: "default", Labels: map[string]string{}, Image: "registry.internal/app:1"}
	f.Spec.Annotations = map[string]string{}
	for _, o := range opts {
		o(&f)
	}
	return f
}

func annotation(k, v string) func(*Facts) { return func(f *Facts) { f.Spec.Annotations[k] = v } }
func label(k, v string) func(*Facts)      { return func(f *Facts) { f.Labels[k] = v } }
func image(ref string) func(*Facts)       { return func(f *Facts) { f.Image = ref } }
func digest(d string) func(*Facts)        { return func(f *Facts) { f.ImageDigest = d } }

func TestClassify(t *testing.T) {
	cases := []struct {
		name        string
		onDowngrade policy.DowngradeAction
		facts       Facts
		action      Action
		tier        string
		rule        string
		reason      string // substring
	}{
		{name: "default", facts: facts(), action: ActionRun, tier: "trusted", rule: RuleDefault, reason: "no rule matched"},
		{name: "image rule", facts: facts(image("ci.example/builder:1")), action: ActionRun, tier: "sandboxed", rule: "ci-images", reason: "CI images"},
		{name: "image glob does not cross /", facts: facts(image("ci.example/team/builder:1")), action: ActionRun, tier: "trusted", rule: RuleDefault},
		{name: "digest rule", facts: facts(image("docker.io/library/alpine@sha256:0123abcd"), digest("sha256:0123abcd")), action: ActionRun, tier: "trusted", rule: "pinned-digest"},
		{name: "digest rule sees the content, not the tag", facts: facts(image("docker.io/library/alpine@sha256:0123abcd"), digest("sha256:ffff")), action: ActionRun, tier: "trusted", rule: RuleDefault},
		{name: "digest rule on a tag of that content", facts: facts(image("docker.io/library/alpine:3"), digest("sha256:0123abcd")), action: ActionRun, tier: "trusted", rule: "pinned-digest"},
		{name: "label rule", facts: facts(label("team", "red-1")), action: ActionRun, tier: "isolated", rule: "team-label"},
		{name: "label rule needs the key", facts: facts(label("owner", "red-1")), action: ActionRun, tier: "trusted", rule: RuleDefault},
		{name: "deny rule with expression", facts: facts(annotation("CAP_SYS_ADMIN", "x"), func(f *Facts) {
			f.Spec.Process.Capabilities.Bounding = append(f.Spec.Process.Capabilities.Bounding, "CAP_SYS_ADMIN")
		}), action: ActionDeny, rule: "no-sys-admin", reason: "CAP_SYS_ADMIN is not allowed"},
		{name: "upgrade by annotation", facts: facts(annotation(TierRequestKey, "isolated")),
			action: ActionRun, tier: "isolated", rule: RuleRequest, reason: `annotation triage.io/tier="isolated" asks for stronger isolation than tier "trusted"`},
		{name: "upgrade by label", facts: facts(label(TierRequestKey, "sandboxed")),
			action: ActionRun, tier: "sandboxed", rule: RuleRequest, reason: "label triage.io/tier"},
		{name: "same tier requested", facts: facts(image("ci.example/b"), annotation(TierRequestKey, "sandboxed")),
			action: ActionRun, tier: "sandboxed", rule: "ci-images"},
		{name: "downgrade by annotation denied", facts: facts(image("ci.example/b"), annotation(TierRequestKey, "trusted")),
			action: ActionDeny, rule: RuleRequest, reason: `annotation triage.io/tier="trusted" asks for weaker isolation than tier "sandboxed", which rule "ci-images" gives`},
		{name: "downgrade by label denied", facts: facts(label("team", "red"), label(TierRequestKey, "sandboxed")),
			action: ActionDeny, rule: RuleRequest, reason: `label triage.io/tier="sandboxed" asks for weaker isolation than tier "isolated"`},
		{name: "downgrade by annotation ignored", onDowngrade: policy.DowngradeIgnore, facts: facts(image("ci.example/b"), annotation(TierRequestKey, "trusted")),
			action: ActionRun, tier: "sandboxed", rule: "ci-images", reason: `CI images run under gVisor; ignored annotation triage.io/tier="trusted": weaker than tier "sandboxed" (on_downgrade = "ignore")`},
		{name: "downgrade by label ignored", onDowngrade: policy.DowngradeIgnore, facts: facts(label("team", "red"), label(TierRequestKey, "trusted")),
			action: ActionRun, tier: "isolated", rule: "team-label", reason: `ignored label triage.io/tier="trusted"`},
		{name: "downgrade ignored next to an upgrade", onDowngrade: policy.DowngradeIgnore,
			facts:  facts(image("ci.example/b"), annotation(TierRequestKey, "isolated"), label(TierRequestKey, "trusted")),
			action: ActionRun, tier: "isolated", rule: RuleRequest, reason: `ignored label`},
		{name: "unknown tier requested", facts: facts(annotation(TierRequestKey, "gold")),
			action: ActionDeny, rule: RuleRequest, reason: `names no tier of this policy: use one of trusted, sandboxed, isolated`},
		{name: "unknown tier requested with ignore", onDowngrade: policy.DowngradeIgnore, facts: facts(label(TierRequestKey, "gold")),
			action: ActionDeny, rule: RuleRequest, reason: "names no tier"},
		{name: "deny rule wins over a request", facts: facts(annotation("CAP_SYS_ADMIN", "x"), annotation(TierRequestKey, "isolated"), func(f *Facts) {
			f.Spec.Process.Capabilities.Bounding = append(f.Spec.Process.Capabilities.Bounding, "CAP_SYS_ADMIN")
		}), action: ActionDeny, rule: "no-sys-admin"},
		{name: "nil spec", facts: Facts{}, action: ActionDeny, rule: RuleInvalidSpec, reason: "cannot be classified"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.onDowngrade == "" {
				tc.onDowngrade = policy.DowngradeDeny
			}
			p := parsePolicy(t, tc.onDowngrade)
			d := Classify(p, tc.facts)
			if d.Action != tc.action || d.Tier != tc.tier || d.Rule != tc.rule {
				t.Errorf("decision = %s/%q by %q, want %s/%q by %q (reason: %s)", d.Action, d.Tier, d.Rule, tc.action, tc.tier, tc.rule, d.Reason)
			}
			if !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("reason = %q, want it to contain %q", d.Reason, tc.reason)
			}
			if d.Findings == nil {
				t.Error("Findings is nil, want a list")
			}
			if d.Action == ActionDeny && (d.Tier != "" || d.Runtime != "") {
				t.Errorf("denied with tier %q runtime %q, want both empty", d.Tier, d.Runtime)
			}
		})
	}
}

func TestDecisionErr(t *testing.T) {
	p := parsePolicy(t, policy.DowngradeDeny)
	if err := Classify(p, facts()).Err(); err != nil {
		t.Errorf("run decision: Err() = %v, want nil", err)
	}
	err := Classify(p, facts(annotation(TierRequestKey, "gold"))).Err()
	if !errors.Is(err, ErrDenied) {
		t.Fatalf("Err() = %v, want errors.Is ErrDenied", err)
	}
	var denied *DeniedError
	if !errors.As(err, &denied) || denied.Rule != RuleRequest {
		t.Errorf("Err() = %#v, want *DeniedError for rule %q", err, RuleRequest)
	}
	if want := `triage: denied by rule "request:triage.io/tier": annotation triage.io/tier="gold" names no tier`; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Err() = %q, want prefix %q", err, want)
	}
	if (Decision{}).Err() == nil {
		t.Error("zero Decision: Err() = nil, want a denial (fail closed)")
	}
}

// TestExpressionErrorDenies: a rule expression that fails at run time denies, naming the
// rule, instead of skipping the rule.
func TestExpressionErrorDenies(t *testing.T) {
	p := policyWith(t, policy.DowngradeDeny, `
[[rule]]
name = "team-lookup"
tier = "trusted"
reason = "r"
  [rule.match]
  expression = 'facts.labels["team"] == "a"'
`)
	d := Classify(p, facts())
	if d.Action != ActionDeny || d.Rule != "team-lookup" || !strings.Contains(d.Reason, "no such key") {
		t.Errorf("decision = %s by %q (%s), want deny by team-lookup naming the error", d.Action, d.Rule, d.Reason)
	}
	if d := Classify(p, facts(label("team", "a"))); d.Action != ActionRun || d.Rule != "team-lookup" {
		t.Errorf("with the label: decision = %s by %q (%s), want run by team-lookup", d.Action, d.Rule, d.Reason)
	}
}

func TestKubernetesFactsOnlyInCRINamespace(t *testing.T) {
	p := policyWith(t, policy.DowngradeDeny, `
[[rule]]
name = "kube-system"
action = "deny"
reason = "matched"
  [rule.match]
  namespaces = ["kube-system"]
  expression = 'facts.container_type == "sandbox" && facts.image == "registry.k8s.io/pause:3.9"'
`)
	cri := func(ns string, madeByCRI bool) Facts {
		return facts(func(f *Facts) { f.Namespace, f.CRI, f.Image = ns, madeByCRI, "" },
			annotation(AnnotationSandboxNamespace, "kube-system"),
			annotation(AnnotationContainerType, "sandbox"),
			annotation(AnnotationImageName, "registry.k8s.io/pause:3.9"))
	}
	if d := Classify(p, cri("k8s.io", true)); d.Rule != "kube-system" {
		t.Errorf("made by CRI in k8s.io: rule %q, want kube-system", d.Rule)
	}
	// Any containerd client can use the k8s.io namespace and write CRI's annotations; only
	// the CRI plugin's record makes them facts.
	if d := Classify(p, cri("k8s.io", false)); d.Rule != RuleDefault {
		t.Errorf("in k8s.io, not made by CRI: rule %q, want %q", d.Rule, RuleDefault)
	}
	if d := Classify(p, cri("default", true)); d.Rule != RuleDefault {
		t.Errorf("in default: rule %q, want %q (CRI annotations are not believed outside k8s.io)", d.Rule, RuleDefault)
	}
}

func TestCheckMember(t *testing.T) {
	p := parsePolicy(t, policy.DowngradeDeny)
	sandboxedPod := Decision{Action: ActionRun, Tier: "sandboxed", Runtime: "io.containerd.runsc.v1", Rule: "ci-images"}
	cases := []struct {
		name   string
		pod    Decision
		facts  Facts
		action Action
		tier   string
		reason string
	}{
		{name: "weaker need runs in the pod's tier", pod: sandboxedPod, facts: facts(),
			action: ActionRun, tier: "sandboxed", reason: `runs in its pod's tier "sandboxed"`},
		{name: "same need", pod: sandboxedPod, facts: facts(image("ci.example/x")), action: ActionRun, tier: "sandboxed", reason: "CI images"},
		{name: "stronger need denied", pod: sandboxedPod, facts: facts(label("team", "red")),
			action: ActionDeny, reason: `the container needs tier "isolated" (team red runs in micro-VMs) but its pod runs in the weaker tier "sandboxed"`},
		{name: "own denial", pod: sandboxedPod, facts: facts(annotation(TierRequestKey, "gold")), action: ActionDeny, reason: "names no tier"},
		{name: "pod tier gone from the policy", pod: Decision{Action: ActionRun, Tier: "gone"}, facts: facts(),
			action: ActionDeny, reason: `its pod runs in tier "gone", which the policy no longer defines`},
		{name: "denied pod", pod: Decision{Action: ActionDeny, Rule: "x", Reason: "no"}, facts: facts(), action: ActionDeny, reason: "its pod was denied"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := CheckMember(p, tc.pod, tc.facts)
			if d.Action != tc.action || d.Tier != tc.tier {
				t.Errorf("decision = %s/%q, want %s/%q (reason: %s)", d.Action, d.Tier, tc.action, tc.tier, d.Reason)
			}
			if !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("reason = %q, want it to contain %q", d.Reason, tc.reason)
			}
			if d.Action == ActionRun && d.Runtime != tc.pod.Runtime {
				t.Errorf("runtime = %q, want the pod's %q", d.Runtime, tc.pod.Runtime)
			}
		})
	}
}

// TestDecisionJSON pins the audit/explain JSON shape.
func TestDecisionJSON(t *testing.T) {
	d := Classify(parsePolicy(t, policy.DowngradeDeny), facts(func(f *Facts) { f.Spec.Root.Readonly = false }))
	data, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"action":"run","tier":"trusted","runtime":"io.containerd.runc.v2","rule":"default","reason":"no rule matched: the policy's default tier","findings":[{"id":"writable-rootfs","evidence":"root filesystem is writable"}]}`
	if string(data) != want {
		t.Errorf("JSON =\n%s\nwant\n%s", data, want)
	}
}

// CRI may record a container's image under another tag of the same content: image rules
// see the name the kubelet asked for too, and the stronger outcome stands.
func TestImageRulesSeeTheKubeletsImageName(t *testing.T) {
	p, err := policy.Parse("p.toml", []byte(`default_tier = "trusted"
[tier.trusted]
strength = 10
runtime = "io.containerd.runc.v2"
[tier.sandboxed]
strength = 20
runtime = "io.containerd.runsc.v1"
[[rule]]
name = "untrusted"
tier = "sandboxed"
reason = "untrusted registry"
  [rule.match]
  images = ["registry.untrusted.example/*"]
`))
	if err != nil {
		t.Fatal(err)
	}
	spec := &specs.Spec{Process: &specs.Process{}, Annotations: map[string]string{AnnotationImageName: "registry.untrusted.example/tool:1"}}
	for _, tc := range []struct {
		name, ns, want string
	}{
		{name: "CRI: the kubelet's name counts", ns: CRINamespace, want: "sandboxed"},
		{name: "elsewhere the annotation is not believed", ns: "default", want: "trusted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Classify(p, Facts{Spec: spec, Namespace: tc.ns, CRI: true, Image: "docker.io/library/busybox:e2e"})
			if d.Tier != tc.want {
				t.Fatalf("tier %q (rule %s), want %q", d.Tier, d.Rule, tc.want)
			}
		})
	}
}
