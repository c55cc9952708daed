package cli

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// doctorNode is a temp dir with fake binaries on $PATH and a fake host root.
type doctorNode struct {
	t    *testing.T
	bin  string // on $PATH
	root nodeView
	dir  string // configs
}

func newDoctorNode(t *testing.T) *doctorNode {
	t.Helper()
	n := &doctorNode{t: t, bin: t.TempDir(), root: nodeView{root: t.TempDir()}, dir: t.TempDir()}
	t.Setenv("PATH", n.bin)
	for _, b := range []string{"containerd-shim-runc-v2", "containerd-shim-runsc-v1", "containerd-shim-kata-v2"} {
		n.binary(b, "echo '"+b+":'; echo '  Version:  9.9.9'")
	}
	n.binary("runc", "echo 'runc version 1.2.3'")
	n.binary("runsc", "echo 'runsc version release-1'")
	n.binary("containerd", "echo 'containerd fake 1.6.99'")
	n.file("/proc/self/status", "Name:\tdoctor\nSeccomp:\t0\nSeccomp_filters:\t0\n")
	n.file("/sys/module/apparmor/parameters/enabled", "Y\n")
	n.file("/proc/sys/user/max_user_namespaces", "1000\n")
	n.file("/dev/kvm", "")
	n.file("/dev/vhost-vsock", "")
	return n
}

func (n *doctorNode) binary(name, script string) {
	n.t.Helper()
	if err := os.WriteFile(filepath.Join(n.bin, name), []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		n.t.Fatal(err)
	}
}

// file writes a file under the fake host root.
func (n *doctorNode) file(path, content string) {
	n.t.Helper()
	p := n.root.path(path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		n.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		n.t.Fatal(err)
	}
}

// config writes a config file (policy, runsc or Kata) and returns its path.
func (n *doctorNode) config(name, content string) string {
	n.t.Helper()
	p := filepath.Join(n.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		n.t.Fatal(err)
	}
	return p
}

// remoteSocket listens on a unix socket, as a remote hypervisor service would.
func (n *doctorNode) remoteSocket() string {
	n.t.Helper()
	dir, err := os.MkdirTemp("", "doc") // short: unix socket paths stay under 108 bytes
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { os.RemoveAll(dir) })
	p := filepath.Join(dir, "hv.sock")
	l, err := net.Listen("unix", p)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { l.Close() })
	return p
}

func (n *doctorNode) doctor(args ...string) (code int, stdout, stderr string, rep doctorReport) {
	n.t.Helper()
	var out, errOut bytes.Buffer
	err := runDoctor(append(args, "--output", "json"), &out, &errOut, n.root)
	code = 0
	if err != nil {
		code = 1
		errOut.WriteString(err.Error())
	}
	if jerr := json.Unmarshal(out.Bytes(), &rep); jerr != nil {
		n.t.Fatalf("doctor json: %v: %s (stderr %s)", jerr, out.String(), errOut.String())
	}
	return code, out.String(), errOut.String(), rep
}

func (r doctorReport) tier(name string) tierReport {
	for _, t := range r.Tiers {
		if t.Tier == name {
			return t
		}
	}
	return tierReport{}
}

const doctorPolicy = `default_tier = "trusted"
audit_log = "/tmp/doctor-test.jsonl"

[tier.trusted]
strength = 10
runtime = "io.containerd.runc.v2"

[tier.sandboxed]
strength = 20
runtime = "io.containerd.runsc.v1"
config_path = "@RUNSC@"

[tier.isolated]
strength = 30
runtime = "io.containerd.kata.v2"
config_path = "@KATA@"

[[rule]]
name = "untrusted"
tier = "@RULE_TIER@"
reason = "r"
  [rule.match]
  images = ["untrusted/*"]
`

func TestDoctorTiers(t *testing.T) {
	qemu := `[hypervisor.qemu]
path = "@BIN@/containerd"
kernel = "@BIN@/runc"
`
	for _, tc := range []struct {
		name     string
		runsc    string // runsc config
		kata     string // Kata config; @SOCK@ is a live remote hypervisor socket, @BIN@ the fake bin dir
		ruleTier string
		// noOCISeccomp leaves oci-seccomp out of the runsc config, which every other case has.
		noOCISeccomp bool
		setup        func(n *doctorNode)
		wantCode     int
		want         map[string]checkStatus // tier -> status
		wantWhat     []string               // substrings of some problem
	}{
		{
			name: "all ok with a remote hypervisor", runsc: `binary_name = "runsc"` + "\n[runsc_config]\nplatform = \"systrap\"\n",
			kata: "[hypervisor.remote]\nremote_hypervisor_socket = \"@SOCK@\"\n", ruleTier: "isolated",
			setup: func(n *doctorNode) { os.Remove(n.root.path("/dev/kvm")); os.Remove(n.root.path("/dev/vhost-vsock")) },
			want:  map[string]checkStatus{"trusted": statusOK, "sandboxed": statusOK, "isolated": statusOK},
		},
		{
			name: "qemu without vhost-vsock", kata: qemu, ruleTier: "isolated",
			setup:    func(n *doctorNode) { os.Remove(n.root.path("/dev/vhost-vsock")) },
			wantCode: 1, want: map[string]checkStatus{"isolated": statusUnusable}, wantWhat: []string{"/dev/vhost-vsock: no such file or directory"},
		},
		{
			name: "qemu without kvm", kata: qemu, ruleTier: "isolated",
			setup:    func(n *doctorNode) { os.Remove(n.root.path("/dev/kvm")) },
			wantCode: 1, want: map[string]checkStatus{"isolated": statusUnusable}, wantWhat: []string{"/dev/kvm: no such file or directory"},
		},
		{
			name: "qemu with kvm and vhost-vsock", kata: qemu, ruleTier: "isolated",
			want: map[string]checkStatus{"isolated": statusOK},
		},
		{
			name: "firecracker needs no vhost-vsock", kata: "[hypervisor.firecracker]\n", ruleTier: "isolated",
			setup: func(n *doctorNode) { os.Remove(n.root.path("/dev/vhost-vsock")) },
			want:  map[string]checkStatus{"isolated": statusOK},
		},
		{
			name: "qemu binary missing", kata: "[hypervisor.qemu]\npath = \"/nonexistent/qemu\"\n", ruleTier: "isolated",
			wantCode: 1, want: map[string]checkStatus{"isolated": statusMissing}, wantWhat: []string{"hypervisor.qemu path"},
		},
		{
			name: "remote hypervisor not serving", kata: "[hypervisor.remote]\nremote_hypervisor_socket = \"/nonexistent/hv.sock\"\n", ruleTier: "isolated",
			wantCode: 1, want: map[string]checkStatus{"isolated": statusUnusable}, wantWhat: []string{"remote hypervisor socket /nonexistent/hv.sock"},
		},
		{
			name: "unusable tier the policy does not use", kata: qemu, ruleTier: "sandboxed",
			setup: func(n *doctorNode) { os.Remove(n.root.path("/dev/vhost-vsock")) },
			want:  map[string]checkStatus{"isolated": statusUnusable, "sandboxed": statusOK},
		},
		{
			name: "runsc kvm platform without kvm", runsc: "[runsc_config]\nplatform = \"kvm\"\n", ruleTier: "sandboxed",
			setup:    func(n *doctorNode) { os.Remove(n.root.path("/dev/kvm")) },
			wantCode: 1, want: map[string]checkStatus{"sandboxed": statusUnusable}, wantWhat: []string{"platform kvm needs /dev/kvm"},
		},
		{
			name: "runsc that ignores the seccomp profile", runsc: "[runsc_config]\nplatform = \"systrap\"\n", noOCISeccomp: true, ruleTier: "sandboxed",
			wantCode: 1, want: map[string]checkStatus{"sandboxed": statusUnusable}, wantWhat: []string{"runsc ignores the OCI profile without oci-seccomp"},
		},
		{
			name: "runsc binary missing", runsc: `binary_name = "runsc-nope"`, ruleTier: "sandboxed",
			wantCode: 1, want: map[string]checkStatus{"sandboxed": statusMissing}, wantWhat: []string{`runsc binary "runsc-nope"`},
		},
		{
			name: "delegate shim missing", ruleTier: "sandboxed",
			setup:    func(n *doctorNode) { os.Remove(filepath.Join(n.bin, "containerd-shim-runsc-v1")) },
			wantCode: 1, want: map[string]checkStatus{"sandboxed": statusMissing}, wantWhat: []string{"delegate shim containerd-shim-runsc-v1 not found"},
		},
		{
			name: "delegate shim that cannot run", ruleTier: "sandboxed",
			setup:    func(n *doctorNode) { n.binary("containerd-shim-runsc-v1", "echo broken >&2; exit 3") },
			wantCode: 1, want: map[string]checkStatus{"sandboxed": statusUnusable}, wantWhat: []string{"exit status 3: broken"},
		},
		{
			name: "runc missing", ruleTier: "sandboxed",
			setup:    func(n *doctorNode) { os.Remove(filepath.Join(n.bin, "runc")) },
			wantCode: 1, want: map[string]checkStatus{"trusted": statusMissing}, wantWhat: []string{`runc binary "runc"`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newDoctorNode(t)
			if tc.setup != nil {
				tc.setup(n)
			}
			kata := strings.NewReplacer("@SOCK@", n.remoteSocket(), "@BIN@", n.bin).Replace(cmpOr(tc.kata, "[hypervisor.remote]\nremote_hypervisor_socket = \"@SOCK@\"\n"))
			runsc := tc.runsc
			if !tc.noOCISeccomp {
				if strings.Contains(runsc, "[runsc_config]") {
					runsc = strings.Replace(runsc, "[runsc_config]\n", "[runsc_config]\noci-seccomp = \"true\"\n", 1)
				} else {
					runsc += "\n[runsc_config]\noci-seccomp = \"true\"\n"
				}
			}
			pol := strings.NewReplacer(
				"@RUNSC@", n.config("runsc.toml", runsc),
				"@KATA@", n.config("kata.toml", kata),
				"@RULE_TIER@", tc.ruleTier,
			).Replace(doctorPolicy)
			code, out, stderr, rep := n.doctor("--config", n.config("policy.toml", pol))
			if code != tc.wantCode || rep.OK != (tc.wantCode == 0) {
				t.Errorf("exit %d, ok %v; want exit %d\n%s\n%s", code, rep.OK, tc.wantCode, out, stderr)
			}
			for tier, st := range tc.want {
				if got := rep.tier(tier).Status; got != st {
					t.Errorf("tier %s: %s, want %s\n%s", tier, got, st, out)
				}
			}
			var problems []string
			for _, tr := range rep.Tiers {
				for _, p := range tr.Problems {
					problems = append(problems, p.What)
				}
			}
			for _, w := range tc.wantWhat {
				if !strings.Contains(strings.Join(problems, "\n"), w) {
					t.Errorf("no problem mentions %q:\n%s", w, out)
				}
			}
			if tc.wantCode != 0 && !strings.Contains(stderr, "cannot run on this node") {
				t.Errorf("stderr %q does not say the node cannot run a used tier", stderr)
			}
		})
	}
}

func TestDoctorUsedTiers(t *testing.T) {
	n := newDoctorNode(t)
	pol := n.config("policy.toml", `default_tier = "a"
audit_log = "/tmp/doctor-test.jsonl"
[tier.a]
strength = 10
runtime = "io.containerd.runc.v2"
fallback = "b"
[tier.b]
strength = 20
runtime = "io.containerd.runsc.v1"
[tier.c]
strength = 30
runtime = "io.containerd.kata.v2"
[tier.d]
strength = 40
runtime = "io.containerd.kata.v2"
[[rule]]
name = "deny"
action = "deny"
reason = "r"
[[rule]]
name = "to-c"
tier = "c"
reason = "r"
`)
	_, out, _, rep := n.doctor("--config", pol)
	for tier, want := range map[string]bool{"a": true, "b": true, "c": true, "d": false} {
		if got := rep.tier(tier).Used; got != want {
			t.Errorf("tier %s used = %v, want %v\n%s", tier, got, want, out)
		}
	}
}

func TestDoctorHost(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(n *doctorNode)
		want  map[string]checkStatus
	}{
		{name: "all present", want: map[string]checkStatus{"seccomp": statusOK, "apparmor": statusOK, "user namespaces": statusOK, "containerd": statusOK}},
		{
			name: "none present",
			setup: func(n *doctorNode) {
				n.file("/proc/self/status", "Name:\tdoctor\n")
				n.file("/sys/module/apparmor/parameters/enabled", "N\n")
				n.file("/proc/sys/user/max_user_namespaces", "0\n")
				os.Remove(filepath.Join(n.bin, "containerd"))
			},
			want: map[string]checkStatus{"seccomp": statusMissing, "apparmor": statusMissing, "user namespaces": statusMissing, "containerd": statusMissing},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newDoctorNode(t)
			if tc.setup != nil {
				tc.setup(n)
			}
			_, out, _, rep := n.doctor("--config", n.config("policy.toml", runcPolicy))
			got := map[string]checkStatus{}
			for _, h := range rep.Host {
				got[h.Name] = h.Status
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("host %s: %s, want %s\n%s", k, got[k], v, out)
				}
			}
		})
	}
}

const runcPolicy = `default_tier = "trusted"
audit_log = "/tmp/doctor-test.jsonl"
[tier.trusted]
strength = 10
runtime = "io.containerd.runc.v2"
`

func TestDoctorText(t *testing.T) {
	n := newDoctorNode(t)
	var out, errOut bytes.Buffer
	if err := runDoctor([]string{"--config", n.config("policy.toml", runcPolicy)}, &out, &errOut, n.root); err != nil {
		t.Fatalf("doctor: %v\n%s", err, errOut.String())
	}
	for _, want := range []string{
		"TIER     USED  STATUS  MISSING / UNUSABLE  FIX\n",
		"trusted  yes   ok      -                   -\n",
		"trusted: io.containerd.runc.v2\n  runs in Triage's pod shim",
		"  runc: " + filepath.Join(n.bin, "runc") + " (runc version 1.2.3)\n",
		"containerd       ok      containerd fake 1.6.99",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestDoctorUsage(t *testing.T) {
	for _, args := range [][]string{{"--output", "yaml"}, {"extra"}} {
		if code, _, _ := run(t, append([]string{"doctor"}, args...)...); code != exitUsage {
			t.Errorf("doctor %v: exit %d, want %d", args, code, exitUsage)
		}
	}
	if code, _, stderr := run(t, "doctor", "--config", "/nonexistent/triage.toml"); code != exitError || !strings.Contains(stderr, "pass --config FILE") {
		t.Errorf("missing policy: exit %d, stderr %q", code, stderr)
	}
}
