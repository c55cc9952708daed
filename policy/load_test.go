package policy_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/triage-runtime/triage/policy"
)

// valid is a small valid policy the error cases are built from.
const valid = `default_tier = "trusted"

[tier.trusted]
strength = 10
runtime = "io.containerd.runc.v2"

[tier.sandboxed]
strength = 20
runtime = "io.containerd.runsc.v1"
config_path = "/etc/triage/runsc.toml"

[[rule]]
name = "ci"
tier = "sandboxed"
reason = "CI runs under gVisor"
  [rule.match]
  namespaces = ["ci-*"]
`

func TestParseValid(t *testing.T) {
	p, err := policy.Parse("valid.toml", []byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	if p.Source != "valid.toml" || p.DefaultTier != "trusted" || len(p.Rules) != 1 {
		t.Errorf("policy = %+v", p)
	}
	// Defaults, set in one place.
	if p.OnDowngrade != policy.DowngradeDeny || p.AuditLog != policy.DefaultAuditLog || p.Rules[0].Action != policy.ActionRun {
		t.Errorf("defaults: on_downgrade %q, audit_log %q, action %q", p.OnDowngrade, p.AuditLog, p.Rules[0].Action)
	}
	trusted, ok := p.Tier("trusted")
	if !ok || trusted.Name != "trusted" || trusted.Runc == nil || trusted.Runc.BinaryName != policy.DefaultRuncBinary {
		t.Errorf("trusted tier = %+v", trusted)
	}
	if sb := p.Tiers["sandboxed"]; sb.Runc != nil || sb.ShimBinary() != "containerd-shim-runsc-v1" {
		t.Errorf("sandboxed: runc %+v, shim binary %q", sb.Runc, sb.ShimBinary())
	}
	var names []string
	for _, tr := range p.TiersByStrength() {
		names = append(names, tr.Name)
	}
	if !slices.Equal(names, []string{"trusted", "sandboxed"}) {
		t.Errorf("TiersByStrength = %q", names)
	}
	if got := p.RuleSource("ci"); got != "valid.toml:12:3" {
		t.Errorf("RuleSource = %q, want valid.toml:12:3", got)
	}
	if err := p.Validate(); err != nil {
		t.Errorf("Validate after Parse: %v", err)
	}
}

// TestParseErrors: each class of mistake is reported at its file:line:column.
func TestParseErrors(t *testing.T) {
	cases := []struct {
		name      string
		doc       string
		class     error
		line, col int
		msg       string // substring
	}{
		{"syntax", "default_tier = \n", policy.ErrSyntax, 1, 16, "toml:"},
		{"wrong type", strings.Replace(valid, "strength = 10", `strength = "ten"`, 1), policy.ErrSyntax, 4, 12, "strength"},
		{"unknown top-level key", "defualt_tier = \"trusted\"\n" + valid, policy.ErrUnknownKey, 1, 1, "unknown key"},
		{"unknown tier key", strings.Replace(valid, "strength = 20", "strength = 20\nruntim = \"x\"", 1), policy.ErrUnknownKey, 9, 1, "tier.sandboxed.runtim"},
		{"unknown hardening key", valid + "[tier.trusted.hardening]\nseccomp_profile = \"strict\"\n", policy.ErrUnknownKey, 19, 1, "tier.trusted.hardening.seccomp_profile"},
		{"bad seccomp", valid + "[tier.trusted.hardening]\nseccomp = \"default\"\n", policy.ErrInvalidValue, 19, 1, `"default": use "runtime-default", "strict", "keep" or the absolute path`},
		{"missing seccomp file", valid + "[tier.trusted.hardening]\nseccomp = \"/nonexistent/p.json\"\n", policy.ErrInvalidValue, 19, 1, "/nonexistent/p.json: no such file"},
		{"unknown capability", valid + "[tier.trusted.hardening]\ncapabilities = [\"CHOWN\", \"CAP_SYS_ADMN\"]\n", policy.ErrInvalidValue, 19, 26, `"CAP_SYS_ADMN" is not a Linux capability`},
		{"ALL with others", valid + "[tier.trusted.hardening]\ncapabilities = [\"CHOWN\", \"ALL\"]\n", policy.ErrInvalidValue, 19, 26, `"ALL" allows every capability: write it alone`},
		{"capabilities wrong type", valid + "[tier.trusted.hardening]\ncapabilities = \"CHOWN\"\n", policy.ErrSyntax, 19, 16, "capabilities"},
		{"negative pids_limit", valid + "[tier.trusted.hardening]\npids_limit = -1\n", policy.ErrInvalidValue, 19, 1, "-1: use a positive limit, or 0"},
		{"bad run_as_non_root", valid + "[tier.trusted.hardening]\nrun_as_non_root = \"nobody\"\n", policy.ErrInvalidValue, 19, 1, `"nobody": use "allow", "deny", or the user`},
		{"run_as_non_root bad gid", valid + "[tier.trusted.hardening]\nrun_as_non_root = \"1000:x\"\n", policy.ErrInvalidValue, 19, 1, `"1000:x"`},
		{"strip mounts", valid + "[tier.trusted.hardening]\nsensitive_mounts = \"strip\"\n", policy.ErrInvalidValue, 19, 1, `"strip" is not allowed: use "deny", "allow"`},
		{"bad host_namespaces", valid + "[tier.trusted.hardening]\nhost_namespaces = \"no\"\n", policy.ErrInvalidValue, 19, 1, `use "deny", "strip", "allow"`},
		{"bad host_devices", valid + "[tier.trusted.hardening]\nhost_devices = \"strip\"\n", policy.ErrInvalidValue, 19, 1, `use "deny", "allow"`},
		{"user_namespace on runsc", valid + "[tier.sandboxed.hardening]\nuser_namespace = true\n", policy.ErrNotForRuntime, 19, 1, "runc runtimes only"},
		{"apparmor on runsc", valid + "[tier.sandboxed.hardening]\napparmor_profile = \"x\"\n", policy.ErrNotForRuntime, 19, 1, "gVisor ignores it"},
		{"apparmor unconfined", valid + "[tier.trusted.hardening]\napparmor_profile = \"unconfined\"\n", policy.ErrInvalidValue, 19, 1, "name a profile loaded on the host"},
		{"empty annotation prefix", valid + "[tier.trusted.hardening]\nallow_annotations = [\"dev.gvisor.\", \"\"]\n", policy.ErrInvalidValue, 19, 37, "empty prefix"},
		{"inline hardening", strings.Replace(valid, "strength = 10", "strength = 10\nhardening = { pids_limit = -5 }", 1), policy.ErrInvalidValue, 5, 15, "-5"},
		{"unknown match key", valid + "  regex = \"x\"\n", policy.ErrUnknownKey, 18, 3, "regex"},
		{"audit without audit_tier", "mode = \"audit\"\n" + valid, policy.ErrMissingKey, 1, 1, "audit mode needs audit_tier"},
		{"unknown audit_tier", "audit_tier = \"gold\"\n" + valid, policy.ErrUnknownTier, 1, 1, `tier "gold" is not defined`},
		{"bad mode", "mode = \"dry-run\"\naudit_tier = \"trusted\"\n" + valid, policy.ErrInvalidValue, 1, 1, `"dry-run" is not allowed: use "enforce" or "audit"`},
		{"rule in audit without audit_tier", valid + "mode = \"audit\"\n", policy.ErrUnknownKey, 18, 1, "match.mode"},
		{"missing default_tier", strings.Replace(valid, `default_tier = "trusted"`, "", 1), policy.ErrMissingKey, 1, 1, "default_tier is required"},
		{"unknown default tier", strings.Replace(valid, `default_tier = "trusted"`, `default_tier = "gold"`, 1), policy.ErrUnknownTier, 1, 1, `tier "gold" is not defined: use one of "trusted", "sandboxed"`},
		{"unknown rule tier", strings.Replace(valid, `tier = "sandboxed"`, `tier = "sandboxd"`, 1), policy.ErrUnknownTier, 14, 1, `tier "sandboxd" is not defined`},
		{"missing strength", strings.Replace(valid, "strength = 20\n", "", 1), policy.ErrMissingKey, 7, 2, "strength is required"},
		{"duplicate strength", strings.Replace(valid, "strength = 20", "strength = 10", 1), policy.ErrDuplicate, 8, 1, `strength 10 is also the strength of tier "trusted"`},
		{"missing runtime", strings.Replace(valid, "runtime = \"io.containerd.runsc.v1\"\n", "", 1), policy.ErrMissingKey, 7, 2, "runtime is required"},
		{"bad runtime", strings.Replace(valid, "io.containerd.runsc.v1", "runsc", 1), policy.ErrInvalidValue, 9, 1, "not a containerd runtime type"},
		{"tier routes to triage", strings.Replace(valid, "io.containerd.runsc.v1", "io.containerd.triage.v2", 1), policy.ErrInvalidValue, 9, 1, "Triage itself"},
		{"config_path on runc", strings.Replace(valid, "runtime = \"io.containerd.runc.v2\"", "runtime = \"io.containerd.runc.v2\"\nconfig_path = \"/etc/x\"", 1), policy.ErrNotForRuntime, 6, 1, "runc takes no config file"},
		{"runc options on runsc", valid + "[tier.sandboxed.runc]\nroot = \"/run/x\"\n", policy.ErrNotForRuntime, 18, 2, "only for io.containerd.runc.*"},
		{"relative config_path", strings.Replace(valid, "/etc/triage/runsc.toml", "runsc.toml", 1), policy.ErrInvalidValue, 10, 1, "not an absolute path"},
		{"fallback weaker", strings.Replace(valid, "strength = 20", "strength = 20\nfallback = \"trusted\"", 1), policy.ErrWeakFallback, 9, 1, `fallback "trusted" (strength 10) is not stronger than "sandboxed" (strength 20)`},
		{"fallback to itself", strings.Replace(valid, "strength = 20", "strength = 20\nfallback = \"sandboxed\"", 1), policy.ErrWeakFallback, 9, 1, "not stronger"},
		{"fallback unknown", strings.Replace(valid, "strength = 20", "strength = 20\nfallback = \"vm\"", 1), policy.ErrUnknownTier, 9, 1, `tier "vm" is not defined`},
		{"bad on_downgrade", "on_downgrade = \"allow\"\n" + valid, policy.ErrInvalidValue, 1, 1, `"allow" is not allowed: use "deny" or "ignore"`},
		{"bad action", strings.Replace(valid, `name = "ci"`, "name = \"ci\"\naction = \"sandbox\"", 1), policy.ErrInvalidValue, 14, 1, `action "sandbox" is not allowed`},
		{"deny with tier", strings.Replace(valid, `name = "ci"`, "name = \"ci\"\naction = \"deny\"", 1), policy.ErrInvalidValue, 15, 1, "takes no tier"},
		{"missing reason", strings.Replace(valid, "reason = \"CI runs under gVisor\"\n", "", 1), policy.ErrMissingKey, 12, 3, "has no reason"},
		{"missing rule name", strings.Replace(valid, "name = \"ci\"\n", "", 1), policy.ErrMissingKey, 12, 3, "rule 1 has no name"},
		{"duplicate rule name", valid + "[[rule]]\nname = \"ci\"\ntier = \"trusted\"\nreason = \"r\"\n", policy.ErrDuplicate, 19, 1, `rule name "ci" is also used by rule 1`},
		{"bad glob", strings.Replace(valid, `["ci-*"]`, `["ci-*", "ci-[a"]`, 1), policy.ErrBadGlob, 17, 25, `"ci-[a": syntax error in pattern`},
		{"bad label glob", valid + "  labels = { team = \"[\" }\n", policy.ErrBadGlob, 18, 14, `"["`},
		{"unknown finding", valid + "  findings = [\"privileged\", \"rooted\"]\n", policy.ErrUnknownFinding, 18, 29, `"rooted" is not a finding`},
		{"bad CEL", valid + "  expression = 'facts.image.startsWith('\n", policy.ErrBadExpression, 18, 3, `rule "ci": column 24 of the expression: Syntax error`},
		{"CEL unknown field", valid + "  expression = 'facts.imag == \"x\"'\n", policy.ErrBadExpression, 18, 3, "column 6 of the expression: undefined field 'imag'"},
		{"CEL not bool", valid + "  expression = 'facts.image'\n", policy.ErrBadExpression, 18, 3, "has type string, want bool"},
		{"no tiers", "default_tier = \"trusted\"\n", policy.ErrMissingKey, 1, 1, "no tiers"},
		{"bad tier name", strings.Replace(valid, "[tier.sandboxed]", "[tier.Sand]", 1), policy.ErrInvalidValue, 7, 2, `tier name "Sand"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := policy.Parse("bad.toml", []byte(tc.doc))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", p)
			}
			if !errors.Is(err, tc.class) {
				t.Fatalf("error %q is not %v", err, tc.class)
			}
			var found *policy.Error
			for _, e := range policy.Errors(err) {
				if errors.Is(e, tc.class) {
					found = e
					break
				}
			}
			if found == nil {
				t.Fatalf("no *policy.Error of class %v in %q", tc.class, err)
			}
			if found.File != "bad.toml" || found.Line != tc.line || found.Column != tc.col {
				t.Errorf("at %s:%d:%d, want bad.toml:%d:%d (%v)", found.File, found.Line, found.Column, tc.line, tc.col, found)
			}
			if !strings.HasPrefix(found.Error(), "bad.toml:") || !strings.Contains(found.Error(), tc.msg) {
				t.Errorf("message %q, want it to contain %q", found.Error(), tc.msg)
			}
		})
	}
}

// TestParseReportsEveryProblem: one run lists all mistakes, so a user fixes them at once.
func TestParseReportsEveryProblem(t *testing.T) {
	doc := strings.NewReplacer(`default_tier = "trusted"`, `default_tier = "gold"`, `tier = "sandboxed"`, `tier = "vm"`).Replace(valid)
	_, err := policy.Parse("bad.toml", []byte(doc))
	if n := len(policy.Errors(err)); n != 2 {
		t.Errorf("got %d problems, want 2: %v", n, err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "triage.toml")
	if err := os.WriteFile(path, []byte(valid), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := policy.Load(path)
	if err != nil || p.Source != path {
		t.Fatalf("Load = %v, %v", p, err)
	}
	_, err = policy.Load(filepath.Join(dir, "missing.toml"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.toml") {
		t.Errorf("Load of a missing file: %v, want a not-exist error naming the path", err)
	}
}

func TestExamplePolicies(t *testing.T) {
	for _, path := range []string{"../configs/triage.toml", "../configs/examples/runc-only.toml"} {
		if _, err := policy.Load(path); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
	p, err := policy.Load("../configs/triage.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"trusted": "io.containerd.runc.v2", "sandboxed": "io.containerd.runsc.v1", "isolated": "io.containerd.kata.v2"}
	for name, runtime := range want {
		if tr, ok := p.Tier(name); !ok || tr.Runtime != runtime {
			t.Errorf("tier %s = %+v, want runtime %s", name, tr, runtime)
		}
	}
}

func TestValidateWithoutPositions(t *testing.T) {
	p := &policy.Policy{Source: "code", DefaultTier: "x", OnDowngrade: policy.DowngradeDeny, AuditLog: policy.DefaultAuditLog}
	err := p.Validate()
	if !errors.Is(err, policy.ErrMissingKey) || !errors.Is(err, policy.ErrUnknownTier) {
		t.Fatalf("Validate = %v, want missing tiers and unknown default tier", err)
	}
	for _, e := range policy.Errors(err) {
		if e.Line != 0 || !strings.HasPrefix(e.Error(), "code: ") {
			t.Errorf("%q: want no position for a policy built in code", e)
		}
	}
}

func TestUnknownKeyNamesTheRule(t *testing.T) {
	_, err := policy.Parse("bad.toml", []byte(valid+"[[rule]]\nnme = \"x\"\n"))
	errs := policy.Errors(err)
	if len(errs) != 1 || errs[0].Key != "rule[1].nme" || errs[0].Line != 19 {
		t.Errorf("errors = %v, want one unknown key rule[1].nme at line 19", err)
	}
}

func TestHardeningDefaults(t *testing.T) {
	p, err := policy.Parse("valid.toml", []byte(valid+"[tier.isolated]\nstrength = 30\nruntime = \"io.containerd.kata.v2\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	for name, hostNS := range map[string]policy.HostAccess{"trusted": policy.HostDeny, "sandboxed": policy.HostDeny, "isolated": policy.HostStrip} {
		h := p.Tiers[name].Hardening
		want := policy.DefaultHardening(p.Tiers[name].Kind())
		want.Source = h.Source
		if h == nil || h.Seccomp != policy.SeccompRuntimeDefault || !*h.NoNewPrivileges || !*h.MaskProc || *h.PidsLimit != policy.DefaultPidsLimit ||
			h.ReadOnlyRootfs || h.RunAsNonRoot != policy.RootAllow || h.HostNamespaces != hostNS || h.SensitiveMounts != policy.HostDeny ||
			h.HostDevices != policy.HostDeny || h.UserNamespace || h.ApparmorProfile != "" || len(h.AllowAnnotations) != 0 || h.SeccompProfile != nil {
			t.Errorf("%s: hardening = %+v", name, h)
		}
		if !slices.Equal(h.Capabilities, want.Capabilities) || slices.Contains(h.Capabilities, "CAP_NET_RAW") || len(h.Capabilities) != 13 {
			t.Errorf("%s: capabilities = %v", name, h.Capabilities)
		}
	}
	if src := p.Tiers["trusted"].Hardening.Source; src != "valid.toml:3:2" {
		t.Errorf("source of an absent table = %q, want its tier's", src)
	}
}

func TestHardeningValues(t *testing.T) {
	dir := t.TempDir()
	prof := filepath.Join(dir, "p.json")
	if err := os.WriteFile(prof, []byte(`{"defaultAction": "SCMP_ACT_ERRNO"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := valid + `[tier.trusted.hardening]
seccomp = "` + prof + `"
capabilities = []
no_new_privileges = false
read_only_rootfs = true
mask_proc = false
pids_limit = 0
run_as_non_root = "65534:65533"
host_namespaces = "strip"
sensitive_mounts = "allow"
host_devices = "allow"
user_namespace = true
apparmor_profile = "triage"
allow_annotations = ["dev.gvisor.spec.mount."]
`
	p, err := policy.Parse("v.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	h := p.Tiers["trusted"].Hardening
	uid, gid, ok := h.RunAsNonRoot.User()
	if h.SeccompProfile == nil || h.SeccompProfile.DefaultAction != "SCMP_ACT_ERRNO" || h.Capabilities == nil || len(h.Capabilities) != 0 ||
		*h.NoNewPrivileges || !h.ReadOnlyRootfs || *h.MaskProc || *h.PidsLimit != 0 || !ok || uid != 65534 || gid != 65533 ||
		h.HostNamespaces != policy.HostStrip || h.SensitiveMounts != policy.HostAllow || h.HostDevices != policy.HostAllow ||
		!h.UserNamespace || h.ApparmorProfile != "triage" || !slices.Equal(h.AllowAnnotations, []string{"dev.gvisor.spec.mount."}) || h.Source != "v.toml:18:2" {
		t.Errorf("hardening = %+v", h)
	}
}

func TestHardeningUnconfinedProfileFile(t *testing.T) {
	prof := filepath.Join(t.TempDir(), "allow.json")
	if err := os.WriteFile(prof, []byte(`{"defaultAction": "SCMP_ACT_ALLOW"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := policy.Parse("v.toml", []byte(valid+"[tier.trusted.hardening]\nseccomp = \""+prof+"\"\n"))
	if !errors.Is(err, policy.ErrInvalidValue) || !strings.Contains(err.Error(), "allows every syscall") {
		t.Errorf("error %v, want an unconfined profile refused", err)
	}
}

func TestRuntimeKind(t *testing.T) {
	for runtime, want := range map[string]policy.RuntimeKind{
		"io.containerd.runc.v2": policy.KindRunc, "io.containerd.runsc.v1": policy.KindGVisor, "io.containerd.kata.v2": policy.KindKata,
		"io.containerd.kata-qemu.v2": policy.KindKata, "io.containerd.youki.v2": policy.KindOther,
	} {
		if got := (&policy.Tier{Runtime: runtime}).Kind(); got != want {
			t.Errorf("%s: %s, want %s", runtime, got, want)
		}
	}
}

func TestCanonicalCapability(t *testing.T) {
	for in, want := range map[string]string{"sys_admin": "CAP_SYS_ADMIN", "CAP_KILL": "CAP_KILL", " net_raw ": "CAP_NET_RAW"} {
		if got, ok := policy.CanonicalCapability(in); !ok || got != want {
			t.Errorf("%q: %q %t", in, got, ok)
		}
	}
	if _, ok := policy.CanonicalCapability("CAP_FLY"); ok {
		t.Error("CAP_FLY known")
	}
}
