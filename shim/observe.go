package shim

import (
	"context"
	"errors"
	"time"

	"github.com/containerd/log"

	"github.com/triage-runtime/triage/classifier"
	"github.com/triage-runtime/triage/hardening"
	"github.com/triage-runtime/triage/policy"
	"github.com/triage-runtime/triage/shim/metrics"
	"github.com/triage-runtime/triage/shim/state"
)

func init() { policies.OnLoad = recordPolicyLoad }

// recordPolicyLoad counts a policy text compiled, in the metrics file of that policy, or of
// the one it replaces when it fails.
func recordPolicyLoad(_ string, pol, last *policy.Policy, err error) {
	target, result := pol, "ok"
	if err != nil {
		target, result = last, "error"
	}
	if target != nil {
		record(context.Background(), target.MetricsTextfile, metrics.Update{PolicyLoad: result})
	}
}

// recordStart counts a start's decision (when it got one), its refusal, the time Triage's
// own part took when it succeeded, and the pods served.
func recordStart(ctx context.Context, pol *policy.Policy, d classifier.Decision, err error, took time.Duration) {
	if pol == nil || pol.MetricsTextfile == "" || d.Action == "" {
		return
	}
	u := metrics.Update{Decision: &metrics.Decision{Action: string(d.Action), Tier: d.Tier, Rule: d.Rule}, Pods: state.CountPods()}
	switch {
	case d.Action == classifier.ActionDeny:
		u.Refusal = refusalCause(d, err)
	case err == nil:
		u.Start = took
	}
	record(ctx, pol.MetricsTextfile, u)
}

// refusalCause names what refused a workload: its rule, the hardening control, the tier
// that cannot run on the node, its own tier request, or its unreadable spec.
func refusalCause(d classifier.Decision, err error) string {
	var he *hardening.Error
	switch {
	case d.Rule == classifier.RulePlacement && errors.As(err, &he):
		return "control:" + he.Control
	case d.Rule == classifier.RulePlacement:
		return "unrunnable-tier"
	case d.Rule == classifier.RuleRequest:
		return "request"
	case d.Rule == classifier.RuleInvalidSpec:
		return "invalid-spec"
	}
	return "rule:" + d.Rule
}

// recordDelete updates the pods served after a container's delete.
func recordDelete(ctx context.Context, path string) {
	if path != "" {
		record(ctx, path, metrics.Update{Pods: state.CountPods()})
	}
}

// record writes an update; metrics never fail a start or a delete.
func record(ctx context.Context, path string, u metrics.Update) {
	if path == "" {
		return
	}
	if err := metrics.Record(path, u); err != nil {
		log.G(ctx).WithError(err).Warn("metrics not recorded")
	}
}
