//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/triage-runtime/triage/e2e/harness"
)

// auditModePolicy routes by the default tiers and rules; @MODE@ is "audit" or "enforce".
// In audit mode everything runs in the audit tier, whose hardening changes nothing: the
// node as it was before Triage.
var auditModePolicy = `default_tier = "trusted"
audit_log = "@AUDIT@"
mode = "@MODE@"
audit_tier = "audit"

[tier.audit]
strength = 5
runtime = "io.containerd.runc.v2"
` + harness.PassThroughHardening("audit") + `
[tier.trusted]
strength = 10
runtime = "io.containerd.runc.v2"

[tier.sandboxed]
strength = 20
runtime = "io.containerd.runsc.v1"
config_path = "@RUNSC_CONFIG@"

[[rule]]
name = "no-privileged"
action = "deny"
reason = "privileged containers are not allowed on this node"
  [rule.match]
  findings = ["privileged"]
`

// TestAuditModeRollout: the same workloads under audit, then under enforce after a
// one-word policy edit. Under audit every one runs, and its audit line says what
// enforcement would do; under enforce, that is what happens.
func TestAuditModeRollout(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		n := startNode(t, v, strings.ReplaceAll(auditModePolicy, "@MODE@", "audit"))
		workloads := []struct {
			name  string
			flags []string
		}{
			{"plain", nil},
			{"asks-gvisor", []string{"--annotation", "triage.io/tier=sandboxed"}},
			{"privileged", []string{"--privileged"}},
			{"mounts-etc", []string{"--mount", "type=bind,src=/etc,dst=/h,options=rbind:ro"}},
		}
		predicted := map[string]map[string]any{}
		for _, w := range workloads {
			id := n.ID("audit-" + w.name)
			if _, stderr, code := n.ctr(append(append(n.runArgs("--rm"), w.flags...), image, id, "true")...); code != 0 {
				t.Fatalf("%s under audit: exit %d: %s; audit mode denies nothing", w.name, code, stderr)
			}
			rec := n.auditOf(id)
			if rec["tier"] != "audit" {
				t.Errorf("%s under audit ran in tier %v, want the audit tier", w.name, rec["tier"])
			}
			would, ok := rec["would"].(map[string]any)
			if !ok {
				t.Fatalf("%s under audit: no would in %v", w.name, rec)
			}
			predicted[w.name] = would
		}

		// The rollout: one word changes in the policy.
		b, err := os.ReadFile(n.policy)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(n.policy, []byte(strings.Replace(string(b), `mode = "audit"`, `mode = "enforce"`, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, w := range workloads {
			id := n.ID("enforce-" + w.name)
			_, stderr, code := n.ctr(append(append(n.runArgs("--rm"), w.flags...), image, id, "true")...)
			n.ctr("container", "delete", id)
			rec := n.auditOf(id)
			would := predicted[w.name]
			if rec["action"] != would["action"] || fmt.Sprint(rec["tier"]) != fmt.Sprint(would["tier"]) || rec["rule"] != would["rule"] {
				t.Errorf("%s: enforced %v/%v by %v, but the audit line predicted %v/%v by %v", w.name,
					rec["action"], rec["tier"], rec["rule"], would["action"], would["tier"], would["rule"])
			}
			if (code == 0) != (would["action"] == "run") {
				t.Errorf("%s under enforce: exit %d (%s), predicted %v", w.name, code, strings.TrimSpace(stderr), would["action"])
			}
		}
	})
}
