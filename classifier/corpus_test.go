package classifier_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/triage-runtime/triage/classifier"
	"github.com/triage-runtime/triage/policy"
)

const corpusDir = "testdata/corpus"

// loadExample loads the documented example policy, which the corpus is checked against.
func loadExample(t testing.TB) *policy.Policy {
	t.Helper()
	p, err := policy.Load("../configs/triage.toml")
	if err != nil {
		t.Fatalf("load example policy: %v", err)
	}
	return p
}

// readSpec reads a corpus spec; a file that is not a valid spec gives a nil Spec, as the
// shim passes it.
func readSpec(t testing.TB, name string) *specs.Spec {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(corpusDir, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if json.Unmarshal(data, &s) != nil {
		return nil
	}
	return &s
}

// TestCorpus classifies every spec of testdata/corpus against configs/triage.toml.
func TestCorpus(t *testing.T) {
	p := loadExample(t)
	none := []string{}
	cases := []struct {
		name      string
		namespace string // containerd namespace; "" means k8s.io
		labels    map[string]string
		action    classifier.Action
		tier      string
		rule      string
		findings  []string
	}{
		{name: "hardened", action: "run", tier: "trusted", rule: "default", findings: none},
		{name: "hardened-public-image", action: "run", tier: "sandboxed", rule: "untrusted-registry", findings: none},
		{name: "ctr-default", namespace: "default", action: "run", tier: "trusted", rule: "default",
			findings: []string{"run-as-root", "seccomp-unconfined", "apparmor-unconfined", "privilege-escalation", "writable-rootfs"}},
		{name: "privileged-tenant", action: "deny", rule: "deny-privileged-tenants",
			findings: []string{"privileged", "dangerous-capability", "non-baseline-capability", "run-as-root", "seccomp-unconfined", "apparmor-unconfined", "privilege-escalation", "writable-rootfs", "host-device", "unmasked-proc"}},
		{name: "privileged-ci", action: "run", tier: "isolated", rule: "host-access",
			findings: []string{"privileged", "dangerous-capability", "non-baseline-capability", "run-as-root", "seccomp-unconfined", "apparmor-unconfined", "privilege-escalation", "writable-rootfs", "host-device", "unmasked-proc"}},
		{name: "privileged-kube-system", action: "run", tier: "system", rule: "kube-system",
			findings: []string{"privileged", "dangerous-capability", "non-baseline-capability", "run-as-root", "seccomp-unconfined", "apparmor-unconfined", "privilege-escalation", "writable-rootfs", "host-device", "unmasked-proc"}},
		{name: "host-network", action: "run", tier: "isolated", rule: "host-access", findings: []string{"host-namespace"}},
		{name: "host-pid-path", action: "run", tier: "isolated", rule: "host-access", findings: []string{"host-namespace"}},
		{name: "pod-member-namespaces", action: "run", tier: "trusted", rule: "default", findings: none},
		{name: "mount-docker-sock", action: "run", tier: "isolated", rule: "host-access", findings: []string{"sensitive-host-mount"}},
		{name: "mount-etc-subpath", action: "run", tier: "isolated", rule: "host-access", findings: []string{"sensitive-host-mount"}},
		{name: "mount-root", action: "run", tier: "isolated", rule: "host-access", findings: []string{"sensitive-host-mount"}},
		{name: "mount-traversal", action: "run", tier: "isolated", rule: "host-access", findings: []string{"sensitive-host-mount"}},
		{name: "mount-kubelet", action: "run", tier: "isolated", rule: "host-access", findings: []string{"sensitive-host-mount"}},
		{name: "mount-proc-bind", action: "run", tier: "isolated", rule: "host-access", findings: []string{"sensitive-host-mount"}},
		{name: "cri-runtime-mounts", action: "run", tier: "trusted", rule: "default", findings: none},
		{name: "mount-data", action: "run", tier: "trusted", rule: "default", findings: none},
		{name: "cap-sys-admin", action: "run", tier: "sandboxed", rule: "dangerous-capability", findings: []string{"dangerous-capability", "non-baseline-capability"}},
		// NET_RAW is in the PSS baseline set containerd gives every container.
		{name: "cap-net-raw-effective", action: "run", tier: "trusted", rule: "default", findings: none},
		{name: "cap-lowercase-name", action: "run", tier: "sandboxed", rule: "dangerous-capability", findings: []string{"dangerous-capability", "non-baseline-capability"}},
		{name: "combo-host-and-caps", action: "run", tier: "isolated", rule: "host-access",
			findings: []string{"host-namespace", "sensitive-host-mount", "dangerous-capability", "non-baseline-capability"}},
		{name: "run-as-root", action: "run", tier: "trusted", rule: "default", findings: []string{"run-as-root"}},
		{name: "root-userns-remap", action: "run", tier: "trusted", rule: "default", findings: none},
		{name: "root-userns-identity", action: "run", tier: "trusted", rule: "default", findings: []string{"run-as-root"}},
		{name: "seccomp-allow-all", action: "run", tier: "trusted", rule: "default", findings: []string{"seccomp-unconfined"}},
		{name: "apparmor-unconfined", action: "run", tier: "trusted", rule: "default", findings: []string{"apparmor-unconfined"}},
		{name: "writable-rootfs", action: "run", tier: "trusted", rule: "default", findings: []string{"writable-rootfs"}},
		{name: "privilege-escalation", action: "run", tier: "trusted", rule: "default", findings: []string{"privilege-escalation"}},
		{name: "unsafe-sysctl", action: "run", tier: "sandboxed", rule: "dangerous-capability", findings: []string{"unsafe-sysctl"}},
		{name: "safe-sysctl", action: "run", tier: "trusted", rule: "default", findings: none},
		{name: "host-device", action: "run", tier: "isolated", rule: "host-access", findings: []string{"host-device"}},
		{name: "device-cgroup-all", action: "run", tier: "isolated", rule: "host-access", findings: []string{"host-device"}},
		{name: "unmasked-proc", action: "run", tier: "trusted", rule: "default", findings: []string{"unmasked-proc"}},
		{name: "no-linux-section", action: "run", tier: "isolated", rule: "host-access",
			findings: []string{"host-namespace", "seccomp-unconfined", "unmasked-proc"}},
		// The CRI annotation claims kube-system, but outside k8s.io it is not believed.
		{name: "spoofed-kube-system", namespace: "default", action: "run", tier: "isolated", rule: "host-access", findings: []string{"host-namespace"}},
		{name: "sandbox-kube-system-hostnetwork", action: "run", tier: "system", rule: "kube-system", findings: []string{"host-namespace"}},
		{name: "request-upgrade", action: "run", tier: "isolated", rule: "request:triage.io/tier", findings: none},
		{name: "request-sandboxed", action: "run", tier: "sandboxed", rule: "request:triage.io/tier", findings: none},
		{name: "request-downgrade", action: "deny", rule: "request:triage.io/tier", findings: none},
		{name: "request-unknown-tier", action: "deny", rule: "request:triage.io/tier", findings: none},
		{name: "malformed", action: "deny", rule: "invalid-spec", findings: []string{"invalid-spec"}},
		{name: "wrong-types", action: "deny", rule: "invalid-spec", findings: []string{"invalid-spec"}},
		{name: "empty-object", action: "deny", rule: "invalid-spec", findings: []string{"invalid-spec"}},
		{name: "no-process", action: "deny", rule: "invalid-spec", findings: []string{"invalid-spec"}},
	}
	covered := map[string]bool{}
	for _, tc := range cases {
		covered[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			ns := tc.namespace
			if ns == "" {
				ns = classifier.CRINamespace
			}
			// As the shim sees them: CRI made the k8s.io containers, and every container has
			// an image in containerd's records.
			facts := classifier.Facts{ID: "c1", Spec: readSpec(t, tc.name), Namespace: ns, Labels: tc.labels, CRI: ns == classifier.CRINamespace, Image: "registry.internal/app:1"}
			if tc.name == "cri-runtime-mounts" {
				// The node knows the pod: its own sandbox's and kubelet folders are the runtime's.
				facts.Reach = classifier.Lexical(facts.Spec, "")
				facts.Reach.RuntimeOwned = []string{"/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/0123abcd",
					"/run/containerd/io.containerd.grpc.v1.cri/sandboxes/0123abcd", "/var/lib/kubelet/pods/5f0e"}
			}
			d := classifier.Classify(p, facts)
			if d.Action != tc.action || d.Tier != tc.tier || d.Rule != tc.rule {
				t.Errorf("decision = %s/%q by rule %q, want %s/%q by rule %q (reason: %s)", d.Action, d.Tier, d.Rule, tc.action, tc.tier, tc.rule, d.Reason)
			}
			if got := findingIDs(d.Findings); !slices.Equal(got, tc.findings) {
				t.Errorf("findings = %q, want %q", got, tc.findings)
			}
			if (d.Err() == nil) != (tc.action == classifier.ActionRun) {
				t.Errorf("Err() = %v for action %s", d.Err(), d.Action)
			}
			if d.Action == classifier.ActionRun && d.Runtime != p.Tiers[d.Tier].Runtime {
				t.Errorf("runtime = %q, want the tier's %q", d.Runtime, p.Tiers[d.Tier].Runtime)
			}
		})
	}
	entries, err := os.ReadDir(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 30 {
		t.Errorf("corpus has %d specs, want at least 30", len(entries))
	}
	for _, e := range entries {
		if name := strings.TrimSuffix(e.Name(), ".json"); !covered[name] {
			t.Errorf("%s/%s has no expected decision in TestCorpus", corpusDir, e.Name())
		}
	}
}

func findingIDs(fs []classifier.Finding) []string {
	ids := []string{}
	for _, f := range fs {
		ids = append(ids, f.ID)
	}
	return ids
}
