package classifier

import (
	"errors"
	"fmt"
)

// Action is what happens to a workload.
type Action string

const (
	// ActionRun runs the workload in Decision.Tier.
	ActionRun Action = "run"
	// ActionDeny refuses to start it; Decision.Err says why.
	ActionDeny Action = "deny"
)

// Rule names of decisions that no policy rule made.
const (
	// RuleDefault: no rule matched; the policy's default tier.
	RuleDefault = "default"
	// RuleRequest: the workload's triage.io/tier request decided (honoured or refused).
	RuleRequest = "request:" + TierRequestKey
	// RuleInvalidSpec: the spec is missing or malformed.
	RuleInvalidSpec = "invalid-spec"
	// RulePolicy: the policy itself is inconsistent with the decision (a tier disappeared).
	RulePolicy = "policy"
	// RulePlacement: denied after classification: the tier cannot run on the node, or its
	// hardening refuses the workload.
	RulePlacement = "placement"
)

// Decision is the classifier's verdict on one workload.
type Decision struct {
	Action Action `json:"action"`
	// Tier and Runtime are the tier and its delegate runtime; both empty when denied.
	Tier    string `json:"tier"`
	Runtime string `json:"runtime"`
	// Rule names what decided: a policy rule, or one of the Rule* constants.
	Rule string `json:"rule"`
	// Reason explains the decision to the person who sees it.
	Reason string `json:"reason"`
	// Findings are every risk found, never nil.
	Findings []Finding `json:"findings"`
	// Would is what enforcement would have done, when the decision is in audit mode (the
	// policy's or its rule's) and the workload runs in the audit tier instead: "would deny",
	// "would route to sandboxed". nil for an enforced decision.
	Would *Decision `json:"would,omitempty"`
}

// Summary says in a few words what the decision does: "deny", "run in tier T".
func (d Decision) Summary() string {
	if d.Action == ActionRun {
		return fmt.Sprintf("run in tier %q", d.Tier)
	}
	return "deny"
}

// ErrDenied matches (errors.Is) the error of every denied decision.
var ErrDenied = errors.New("triage: denied")

// DeniedError is the error of a denied decision.
type DeniedError struct {
	Rule   string
	Reason string
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("triage: denied by rule %q: %s", e.Rule, e.Reason)
}

// Is makes errors.Is(err, ErrDenied) true.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

// Err returns nil for a run decision, and for a deny a *DeniedError whose text can be
// shown to the user as it is (ctr and crictl print it).
func (d Decision) Err() error {
	if d.Action == ActionRun {
		return nil
	}
	return &DeniedError{Rule: d.Rule, Reason: d.Reason}
}

func deny(rule, reason string) Decision {
	return Decision{Action: ActionDeny, Rule: rule, Reason: reason}
}

// WouldBeRefused records in an audited decision that the hardening of the tier it would
// run in refuses the workload: enforcement would deny it.
func (d Decision) WouldBeRefused(err error) Decision {
	if d.Would == nil || err == nil {
		return d
	}
	w := *d.Would
	w.Action, w.Tier, w.Runtime, w.Rule, w.Reason = ActionDeny, "", "", RulePlacement, Bound(err.Error())
	d.Would = &w
	d.Reason = Bound(fmt.Sprintf("audit mode: would deny (%s); runs in the audit tier %q", w.Reason, d.Tier))
	return d
}
