package hardening_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/triage-runtime/triage/hardening"
	"github.com/triage-runtime/triage/hardening/execrule"
	"github.com/triage-runtime/triage/policy"
)

// hardened returns a ctr default spec hardened for tr.
func hardened(t *testing.T, tr *policy.Tier) *specs.Spec {
	t.Helper()
	s := ctrDefault(t)
	s.Process.ApparmorProfile = "cri-containerd.apparmor.d"
	if _, err := hardening.Apply(s, tr, hardening.Host{AppArmor: true}); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestExec(t *testing.T) {
	all := policy.CapabilityNames()
	cases := []struct {
		name      string
		hardening string
		proc      func(c *specs.Spec) *specs.Process
		check     func(t *testing.T, p *specs.Process)
		class     error // nil: accepted
	}{
		{"plain exec inherits the container's confinement", "", func(c *specs.Spec) *specs.Process {
			return &specs.Process{Args: []string{"sh"}, User: specs.User{UID: 1000}, Capabilities: &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}, Effective: []string{"CAP_KILL"}}}
		}, func(t *testing.T, p *specs.Process) {
			if !p.NoNewPrivileges || p.ApparmorProfile != "cri-containerd.apparmor.d" || !slices.Equal(p.Capabilities.Bounding, []string{"CAP_KILL"}) {
				t.Errorf("process %+v", p)
			}
		}, nil},
		{"capabilities narrowed to the container's", `capabilities = ["CHOWN", "KILL", "NET_RAW"]`, func(c *specs.Spec) *specs.Process {
			c.Process.Capabilities.Bounding = []string{"CAP_CHOWN", "CAP_KILL"}
			return &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL", "CAP_NET_RAW"}, Permitted: []string{"NET_RAW"}}}
		}, func(t *testing.T, p *specs.Process) {
			// The allow-list has NET_RAW but the container was created without it.
			if !slices.Equal(p.Capabilities.Bounding, []string{"CAP_KILL"}) || len(p.Capabilities.Permitted) != 0 {
				t.Errorf("capabilities %+v", p.Capabilities)
			}
		}, nil},
		{"privileged exec refused", "", func(c *specs.Spec) *specs.Process {
			return &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all}}
		}, nil, hardening.ErrPrivilegedExec},
		{"privileged exec in an ALL tier gets the container's", `capabilities = ["ALL"]`, func(c *specs.Spec) *specs.Process {
			return &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: all, Effective: all}}
		}, func(t *testing.T, p *specs.Process) {
			if slices.Contains(p.Capabilities.Bounding, "CAP_SYS_ADMIN") || !slices.Contains(p.Capabilities.Bounding, "CAP_NET_RAW") {
				t.Errorf("bounding %v", p.Capabilities.Bounding)
			}
		}, nil},
		{"root exec refused", `run_as_non_root = "deny"` + "\n" + `host_namespaces = "allow"`, func(c *specs.Spec) *specs.Process {
			return &specs.Process{User: specs.User{UID: 0}}
		}, nil, hardening.ErrRunAsRoot},
		{"root exec remapped", `run_as_non_root = "1000"`, func(c *specs.Spec) *specs.Process {
			return &specs.Process{User: specs.User{UID: 0, GID: 0}}
		}, func(t *testing.T, p *specs.Process) {
			if p.User.UID != 1000 || p.User.GID != 1000 {
				t.Errorf("user %+v", p.User)
			}
		}, nil},
		{"noNewPrivileges kept from the container", "no_new_privileges = false", func(c *specs.Spec) *specs.Process {
			c.Process.NoNewPrivileges = true
			return &specs.Process{}
		}, func(t *testing.T, p *specs.Process) {
			if !p.NoNewPrivileges {
				t.Error("noNewPrivileges false")
			}
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := tier(t, runc, tc.hardening)
			var c *specs.Spec
			if strings.Contains(tc.hardening, "deny") {
				c = ctrDefault(t) // a root container would be refused at create
			} else {
				c = hardened(t, tr)
			}
			p := tc.proc(c)
			err := hardening.Exec(p, c, tr)
			if tc.class != nil {
				if !errors.Is(err, tc.class) || !strings.Contains(err.Error(), "[tier.t.hardening]") {
					t.Fatalf("error %v, want %v naming the table", err, tc.class)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, p)
		})
	}
}

func TestExecInvalid(t *testing.T) {
	if err := hardening.Exec(nil, ctrDefault(t), tier(t, runc, "")); !errors.Is(err, hardening.ErrInvalidSpec) {
		t.Errorf("error %v, want ErrInvalidSpec", err)
	}
}

func TestUpdate(t *testing.T) {
	major := int64(8)
	pids := func(limit int64) *specs.LinuxResources {
		return &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &limit}}
	}
	cases := []struct {
		name      string
		hardening string
		r         *specs.LinuxResources
		class     error // nil: accepted
	}{
		{"nil", "", nil, nil},
		{"limits only", "", &specs.LinuxResources{Pids: &specs.LinuxPids{}}, nil},
		{"deny rule", "", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}}, nil},
		{"allow a block device", "", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Type: "b", Major: &major, Access: "rw"}}}, hardening.ErrDeviceUpdate},
		{"allow all", "", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}}, hardening.ErrDeviceUpdate},
		{"pids lowered below the default", "", pids(100), nil},
		{"pids at the default", "", pids(policy.DefaultPidsLimit), nil},
		{"pids above the default", "", pids(policy.DefaultPidsLimit + 1), execrule.ErrLimitUpdate},
		{"pids limit removed", "", pids(-1), execrule.ErrLimitUpdate},
		{"pids limit 0", "", pids(0), execrule.ErrLimitUpdate},
		{"pids above a tier's own limit", "pids_limit = 64", pids(65), execrule.ErrLimitUpdate},
		{"pids limit removed in a tier without one", "pids_limit = 0", pids(-1), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := hardening.Update(tc.r, tier(t, runc, tc.hardening))
			if tc.class == nil {
				if err != nil {
					t.Fatalf("Update = %v, want accepted", err)
				}
				return
			}
			if !errors.Is(err, tc.class) || !strings.Contains(err.Error(), "[tier.t.hardening]") {
				t.Errorf("Update = %v, want %v naming the table", err, tc.class)
			}
		})
	}
}
