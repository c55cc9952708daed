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
