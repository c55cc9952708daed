package execrule_test

import (
	"errors"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/triage-runtime/triage/hardening/execrule"
)

func TestUpdate(t *testing.T) {
	pids := func(limit int64) *specs.LinuxResources {
		return &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &limit}}
	}
	allowAll := []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	tier := execrule.Rules{Tier: "t", Source: "policy.toml:3:1", PidsLimit: 4096}
	cases := []struct {
		name  string
		res   *specs.LinuxResources
		r     execrule.Rules
		want  []error // nil: accepted
		other []error // refusals that must not be reported
	}{
		{"nil resources", nil, tier, nil, nil},
		{"no pids", &specs.LinuxResources{}, tier, nil, nil},
		{"pids without a limit leaves it", &specs.LinuxResources{Pids: &specs.LinuxPids{}}, tier, nil, nil},
		{"lowered", pids(100), tier, nil, nil},
		{"kept at the tier's", pids(4096), tier, nil, nil},
		{"raised above the tier's", pids(4097), tier, []error{execrule.ErrLimitUpdate}, []error{execrule.ErrDeviceUpdate}},
		{"removed with -1", pids(-1), tier, []error{execrule.ErrLimitUpdate}, nil},
		{"removed with 0", pids(0), tier, []error{execrule.ErrLimitUpdate}, nil},
		{"no tier limit: -1 passes", pids(-1), execrule.Rules{Tier: "t"}, nil, nil},
		{"no tier limit: raised passes", pids(1 << 20), execrule.Rules{Tier: "t"}, nil, nil},
		{"device allowed", &specs.LinuxResources{Devices: allowAll}, tier, []error{execrule.ErrDeviceUpdate}, []error{execrule.ErrLimitUpdate}},
		{"device denied", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}}, tier, nil, nil},
		{"device allowed and limit removed: both reported", &specs.LinuxResources{Devices: allowAll, Pids: pids(-1).Pids}, tier,
			[]error{execrule.ErrDeviceUpdate, execrule.ErrLimitUpdate}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := execrule.Update(tc.res, tc.r)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Update = %v, want accepted", err)
				}
				return
			}
			for _, class := range tc.want {
				if !errors.Is(err, class) {
					t.Errorf("Update = %v, want it to wrap %v", err, class)
				}
			}
			for _, class := range tc.other {
				if errors.Is(err, class) {
					t.Errorf("Update = %v, want it not to wrap %v", err, class)
				}
			}
			var e *execrule.Error
			if !errors.As(err, &e) || e.Tier != "t" || e.Source != tc.r.Source {
				t.Errorf("Update = %v, want an *Error naming tier t at %s", err, tc.r.Source)
			}
		})
	}
}

// TestUpdatePidsError checks the fields of a pids refusal, the parts of the message code
// can read: the control that refused and the tier it belongs to.
func TestUpdatePidsError(t *testing.T) {
	limit := int64(-1)
	err := execrule.Update(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &limit}}, execrule.Rules{Tier: "isolated", PidsLimit: 4096})
	var e *execrule.Error
	if !errors.As(err, &e) {
		t.Fatalf("Update = %v, want an *Error", err)
	}
	if e.Control != execrule.ControlPidsLimit || e.Tier != "isolated" || !errors.Is(e, execrule.ErrLimitUpdate) || e.Msg == "" {
		t.Errorf("error %+v, want control %s of tier isolated, ErrLimitUpdate, with a message", e, execrule.ControlPidsLimit)
	}
}
