package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/triage-runtime/triage/classifier"
	"github.com/triage-runtime/triage/hardening"
	"github.com/triage-runtime/triage/k8s"
	"github.com/triage-runtime/triage/node"
	"github.com/triage-runtime/triage/policy"
)

// podModel is printed above a manifest's decisions: how a pod is decided.
const podModel = `# Each pod is decided as Triage decides it on the node: its CRI sandbox (the pause
# container, with the pod-level settings only: host namespaces, the pod's securityContext
# and triage.io/* annotations) is classified and fixes the pod's tier; then each init and
# app container is classified and must fit that tier (a container needing a stronger tier
# is denied). Facts are derived off-node as containerd's CRI plugin would build the spec.`

// containerExplanation is the decision on one container of a manifest.
type containerExplanation struct {
	k8s.Container
	explanation
}

// hostFunc gives the hardening the host facts for a tier: this machine's for explain, a
// node that supports every control for test.
type hostFunc func(t *policy.Tier, f classifier.Facts) hardening.Host

func thisNode(t *policy.Tier, f classifier.Facts) hardening.Host {
	return node.Host.HardeningHost(t, f.ID, f.Reach, f.UnknownFields)
}

// capableNode is a node where every tier's delegate applies every control (AppArmor,
// user namespaces, runsc's oci-seccomp, Kata's guest seccomp): only the policy refuses.
func capableNode(_ *policy.Tier, f classifier.Facts) hardening.Host {
	return hardening.Host{
		ID: f.ID, Reach: f.Reach, UnknownFields: f.UnknownFields,
		AppArmor: true, UserNamespaces: true, KataGuestSeccomp: true, GVisorOCISeccomp: true,
	}
}

// decideManifest decides every pod of a manifest: its sandbox, then each container as a
// member of the sandbox's pod.
func decideManifest(p *policy.Policy, data []byte, opts k8s.Options, host hostFunc) (out []containerExplanation, skipped []string, err error) {
	pods, skipped, err := k8s.Decode(data)
	if err != nil {
		return nil, skipped, err
	}
	for _, pod := range pods {
		sb := pod.Sandbox(opts)
		sbe := harden(p, classifier.Classify(p, sb.Facts), sb.Facts, host)
		out = append(out, containerExplanation{Container: sb, explanation: sbe})
		containers, err := pod.Containers(opts)
		if err != nil {
			return nil, skipped, err
		}
		for _, c := range containers {
			e := harden(p, classifier.CheckMember(p, sbe.Decision, c.Facts), c.Facts, host)
			out = append(out, containerExplanation{Container: c, explanation: e})
		}
	}
	return out, skipped, nil
}

// harden applies the hardening of d's tier to the facts' spec, as the shim does before the
// delegate sees it: a refusal denies the workload (rule placement); an audited decision
// records the refusal its would-be tier would make.
func harden(p *policy.Policy, d classifier.Decision, f classifier.Facts, host hostFunc) explanation {
	if w := d.Would; w != nil && w.Action == classifier.ActionRun {
		if wt, ok := p.Tier(w.Tier); ok {
			d = d.WouldBeRefused(hardening.Preview(f.Spec, wt, host(wt, f)))
		}
	}
	e := explanation{Decision: d, Reach: f.Reach}
	tier, ok := p.Tier(d.Tier)
	if !ok || d.Action != classifier.ActionRun {
		return e
	}
	controls, err := hardening.Apply(f.Spec, tier, host(tier, f))
	e.Controls = controls
	if err != nil {
		e.HardeningError = err.Error()
		e.Decision = classifier.Decision{Action: classifier.ActionDeny, Rule: classifier.RulePlacement, Reason: classifier.Bound(err.Error()), Findings: d.Findings}
	}
	return e
}

// explainManifest prints the decisions on a manifest's containers.
func explainManifest(w io.Writer, p *policy.Policy, data []byte, opts k8s.Options, output string) error {
	out, skipped, err := decideManifest(p, data, opts, thisNode)
	if err != nil {
		return err
	}
	nodeFacts := "node facts (AppArmor, the runsc and Kata configurations) are this machine's, where explain runs"
	for i := range out {
		out[i].Assumptions = append(out[i].Assumptions, nodeFacts)
	}
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprintln(w, podModel)
	for _, s := range skipped {
		fmt.Fprintf(w, "# skipped %s\n", s)
	}
	for _, c := range out {
		fmt.Fprintf(w, "\n== %s, container %s (%s)\n", c.Workload, c.Name, c.Type)
		printDecision(w, p, c.Decision)
		printControls(w, c.explanation)
		for _, a := range c.Assumptions {
			fmt.Fprintf(w, "assumed:  %s\n", a)
		}
	}
	return nil
}
