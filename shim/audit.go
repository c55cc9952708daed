package shim

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/triage-runtime/triage/classifier"
	"github.com/triage-runtime/triage/hardening"
)

// auditRecord is one line of the decision log.
type auditRecord struct {
	Time      time.Time `json:"time"`
	Namespace string    `json:"namespace"`
	ID        string    `json:"id"`
	Pod       string    `json:"pod"`
	Image     string    `json:"image,omitempty"`
	classifier.Decision
	// Controls are the tier's hardening controls and how each took effect.
	Controls []hardening.Control `json:"controls,omitempty"`
}

// audit appends the decision to the policy's audit log. Every decision is
// logged, denials included; a log that cannot be written fails the start,
// so no workload runs unrecorded.
func audit(path string, f flags, pod string, facts classifier.Facts, d classifier.Decision, controls []hardening.Control) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("audit log: %w: fix audit_log in the policy or the folder's permissions", err)
	}
	b, err := json.Marshal(auditRecord{Time: time.Now().UTC(), Namespace: f.namespace, ID: f.id, Pod: pod, Image: classifier.Bound(facts.Image), Decision: d, Controls: controls})
	if err != nil {
		return err
	}
	lf, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("audit log: %w: fix audit_log in the policy or the folder's permissions", err)
	}
	defer lf.Close()
	// One write per record: O_APPEND keeps concurrent starts' lines whole.
	if _, err := lf.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("audit log %s: %w", path, err)
	}
	return nil
}
