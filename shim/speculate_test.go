package shim

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/triage-runtime/triage/classifier"
	"github.com/triage-runtime/triage/policy"
)

const guessPolicy = `default_tier = "runc"
[tier.runc]
strength = 10
runtime = "io.containerd.runc.v2"
[tier.gvisor]
strength = 20
runtime = "io.containerd.runsc.v1"
[[rule]]
name = "sandbox-tenants"
tier = "gvisor"
reason = "tenants run in gVisor"
  [rule.match]
  containerd_namespaces = ["tenant-*"]
`

func TestGuessTier(t *testing.T) {
	pol, err := policy.Parse("guess.toml", []byte(guessPolicy))
	if err != nil {
		t.Fatal(err)
	}
	spec := func(annotations map[string]string) *specs.Spec {
		return &specs.Spec{Process: &specs.Process{}, Annotations: annotations}
	}
	runcPod := classifier.Decision{Action: classifier.ActionRun, Tier: "runc"}
	for _, tc := range []struct {
		name   string
		member bool
		pod    classifier.Decision
		facts  classifier.Facts
		want   string // "" for no guess
	}{
		{name: "new pod on the default runc tier", facts: classifier.Facts{Namespace: "default", Spec: spec(nil)}, want: "runc"},
		{name: "a rule on what is known early sends it to gVisor", facts: classifier.Facts{Namespace: "tenant-a", Spec: spec(nil)}},
		{name: "member of a runc pod", member: true, pod: runcPod, facts: classifier.Facts{Namespace: "tenant-a", Spec: spec(nil)}, want: "runc"},
		{name: "member of a denied pod", member: true, pod: classifier.Decision{Action: classifier.ActionDeny}, facts: classifier.Facts{Namespace: "default", Spec: spec(nil)}},
		// runc's start groups by this annotation, which hardening strips:
		// a guess would start runc's shim on the spec before hardening.
		{name: "runc group annotation", facts: classifier.Facts{Namespace: "default", Spec: spec(map[string]string{annotationRuncGroup: "victim"})}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := guessTier(pol, tc.member, tc.pod, tc.facts)
			switch {
			case tc.want == "" && got != nil:
				t.Errorf("guessed tier %q, want no guess", got.Name)
			case tc.want != "" && (got == nil || got.Name != tc.want):
				t.Errorf("guessed %v, want tier %q", got, tc.want)
			}
		})
	}
}
