//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/triage-runtime/triage/e2e/harness"
)

// TestExplainAgreesWithTheNode: pods run through crictl, and `triage explain` on the
// matching Kubernetes manifest; for every container, the node's decision (its audit line)
// is what explain said.
func TestExplainAgreesWithTheNode(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		n := startCRINode(t, v, criPolicy)
		n.importUntrusted()
		cases := []struct {
			name, namespace, image string
			privileged             bool
		}{
			{"plain", "default", image, false},
			{"tenant", "tenant-a", image, false},
			{"untrusted-image", "default", untrustedImage, false},
			{"privileged-tenant", "tenant-b", image, true},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				n := n.in(t)
				// CRI lets a container be privileged only in a privileged sandbox, as the kubelet
				// makes one for a pod with a privileged container.
				podID, podFile := n.runPod(pod{name: tc.name, namespace: tc.namespace, privileged: tc.privileged})
				defer n.removePod(podID)
				c := container{name: "c", image: tc.image, script: "sleep 300", privileged: tc.privileged}
				id := n.mustCrictl("create", podID, c.file(t), podFile)
				n.crictl("start", id)
				node := n.auditOf(id)
				explained := explainManifest(t, n, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: %s}
spec:
  containers:
  - name: c
    image: %s
    securityContext: {privileged: %t}
`, tc.name, tc.namespace, tc.image, tc.privileged))
				if node["action"] != explained["action"] || node["tier"] != explained["tier"] || node["rule"] != explained["rule"] {
					t.Errorf("the node decided %v/%v by %v; triage explain said %v/%v by %v (%v)",
						node["action"], node["tier"], node["rule"], explained["action"], explained["tier"], explained["rule"], explained["reason"])
				}
				n.crictl("rm", "-f", id)
			})
		}
	})
}

// explainManifest runs `triage explain` on a manifest against the node's policy and returns
// its decision for container c.
func explainManifest(t *testing.T, n *node, manifest string) map[string]any {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pod.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(triageBin(t), "triage"), "explain", "--config", n.policy,
		"--output", "json", "--sandbox-image", harness.PauseImage, path).Output()
	if err != nil {
		t.Fatalf("triage explain: %v\n%s", err, out)
	}
	var all []map[string]any
	if err := json.Unmarshal(out, &all); err != nil {
		t.Fatalf("triage explain output: %v\n%s", err, out)
	}
	for _, d := range all {
		if d["container"] == "c" {
			return d
		}
	}
	t.Fatalf("triage explain says nothing of container c:\n%s", out)
	return nil
}
