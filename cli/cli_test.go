package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	examplePolicy = "../configs/triage.toml"
	corpus        = "../classifier/testdata/corpus/"
)

// run runs the triage command in-process.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestExplainText(t *testing.T) {
	code, out, errOut := run(t, "explain", "--config", examplePolicy, "--namespace", "k8s.io", corpus+"mount-docker-sock.json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"action:   run\n",
		"tier:     isolated\n",
		"runtime:  io.containerd.kata.v2\n",
		"rule:     host-access (../configs/triage.toml:",
		"reason:   the workload reaches into the host",
		"findings: 1\n",
		"  - sensitive-host-mount: host /run/docker.sock mounted at /var/run/docker.sock (spec says \"/var/run/docker.sock\")\n",
		// The hardening of the isolated (Kata) tier, one line per control.
		"controls: 16\n",
		"  - sensitive_mounts  kept           allowed: host /run/docker.sock mounted at /var/run/docker.sock (spec says \"/var/run/docker.sock\")",
		"  - apparmor_profile  unsupported    profile \"cri-containerd.apparmor.d\" not applied: the Kata guest has no AppArmor\n",
		"  - pids_limit        translated     pids.max 4096; applied by the kata-agent inside the guest VM\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestExplainDenyText(t *testing.T) {
	code, out, _ := run(t, "explain", corpus+"privileged-tenant.json", "--config", examplePolicy, "--namespace=k8s.io")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"action:   deny\n",
		`error:    triage: denied by rule "deny-privileged-tenants": privileged containers are not allowed in tenant namespaces`,
		"  - privileged: the bounding set holds every capability\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "tier:") {
		t.Errorf("a denial shows a tier:\n%s", out)
	}
}

func TestExplainJSON(t *testing.T) {
	bundle := t.TempDir()
	spec, err := os.ReadFile(corpus + "hardened-public-image.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), spec, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "explain", "--config", examplePolicy, "--namespace", "k8s.io",
		"--label", "triage.io/tier=isolated", "--output", "json", bundle)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	want := map[string]any{
		"action": "run", "tier": "isolated", "runtime": "io.containerd.kata.v2", "rule": "request:triage.io/tier",
		"reason":   `label triage.io/tier="isolated" asks for stronger isolation than tier "sandboxed" (rule "untrusted-registry"): honoured`,
		"findings": []any{},
	}
	if len(got) != len(want)+2 || got["reach"] == nil {
		t.Errorf("fields = %v, want exactly %v, controls and reach", got, want)
	}
	controls, _ := got["controls"].([]any)
	if len(controls) != 16 {
		t.Fatalf("controls = %v, want 16", got["controls"])
	}
	first, _ := controls[0].(map[string]any)
	if len(first) != 3 || first["id"] != "unknown_fields" || first["status"] != "not-applicable" || first["detail"] == "" {
		t.Errorf("controls[0] = %v, want id, status and detail", first)
	}
	for k, v := range want {
		if gv, _ := json.Marshal(got[k]); string(gv) != mustJSON(t, v) {
			t.Errorf("%s = %s, want %s", k, gv, mustJSON(t, v))
		}
	}
}

func TestExplainHardeningRefusal(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "p.toml")
	doc := "default_tier = \"t\"\n[tier.t]\nstrength = 1\nruntime = \"io.containerd.runc.v2\"\n[tier.t.hardening]\nrun_as_non_root = \"deny\"\n"
	if err := os.WriteFile(pol, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := run(t, "explain", "--config", pol, "--output", "json", corpus+"ctr-default.json")
	var got struct {
		Action         string
		Controls       []map[string]string
		HardeningError string `json:"hardening_error"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != 0 {
		t.Fatalf("exit %d, %v:\n%s", code, err, out)
	}
	if got.Action != "run" || len(got.Controls) != 16 || !strings.Contains(got.HardeningError, "[tier.t.hardening] run_as_non_root ("+pol+":5:2)") {
		t.Errorf("explanation = %+v", got)
	}
	_, text, _ := run(t, "explain", "--config", pol, corpus+"ctr-default.json")
	if !strings.Contains(text, "refused:  triage: running as root not allowed") {
		t.Errorf("text lacks the refusal:\n%s", text)
	}
}

func TestExplainDenyHasNoControls(t *testing.T) {
	_, out, _ := run(t, "explain", "--config", examplePolicy, "--namespace=k8s.io", "--output", "json", corpus+"privileged-tenant.json")
	if strings.Contains(out, "controls") {
		t.Errorf("a denial lists controls:\n%s", out)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestExplainNamespaceFromBundlePath(t *testing.T) {
	// A bundle where containerd keeps it: .../io.containerd.runtime.v2.task/NAMESPACE/ID.
	bundle := filepath.Join(t.TempDir(), taskDir, "k8s.io", "abc")
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		t.Fatal(err)
	}
	spec, err := os.ReadFile(corpus + "sandbox-kube-system-hostnetwork.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), spec, 0o600); err != nil {
		t.Fatal(err)
	}
	_, out, _ := run(t, "explain", "--config", examplePolicy, bundle)
	if !strings.Contains(out, "rule:     kube-system") {
		t.Errorf("namespace k8s.io not taken from the bundle path:\n%s", out)
	}
}

func TestExplainMalformedSpec(t *testing.T) {
	code, out, errOut := run(t, "explain", "--config", examplePolicy, corpus+"malformed.json")
	if code != 0 || !strings.Contains(out, "action:   deny") || !strings.Contains(errOut, "is not a valid OCI spec") {
		t.Errorf("exit %d, stdout %q, stderr %q: want the denial and the parse error", code, out, errOut)
	}
}

func TestExplainUsage(t *testing.T) {
	cases := map[string][]string{
		"no spec":          {"explain", "--config", examplePolicy},
		"bad output":       {"explain", "--config", examplePolicy, "--output", "yaml", corpus + "hardened.json"},
		"bad label":        {"explain", "--label", "novalue", corpus + "hardened.json"},
		"unknown flag":     {"explain", "--bogus", corpus + "hardened.json"},
		"unknown command":  {"explian"},
		"no command":       {},
		"check positional": {"check", "triage.toml"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			if code, _, _ := run(t, args...); code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
		})
	}
}

func TestCheckOK(t *testing.T) {
	code, out, errOut := run(t, "check", "--config", examplePolicy)
	if code != 0 || out != "ok: ../configs/triage.toml: 4 tiers, 6 rules, default tier trusted\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestCheckBad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.toml")
	doc := "default_tier = \"trusted\"\n[tier.trusted]\nstrength = 1\nruntime = \"io.containerd.runc.v2\"\nconfig_path = \"/x\"\n[[rule]]\nname = \"r\"\ntier = \"vm\"\nreason = \"x\"\n"
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "check", "--config", path)
	if code != exitError || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	for _, want := range []string{
		"2 problem(s) in " + path,
		path + ":5:1: tier.trusted.config_path: runc takes no config file",
		path + `:8:1: rule[0].tier: rule "r": tier "vm" is not defined`,
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
}

func TestCheckMissingFile(t *testing.T) {
	code, _, errOut := run(t, "check", "--config", filepath.Join(t.TempDir(), "none.toml"))
	if code != exitError || !strings.Contains(errOut, "none.toml") || !strings.Contains(errOut, "pass --config FILE") {
		t.Errorf("exit %d, stderr %q: want the path and the fix", code, errOut)
	}
}

func TestVersion(t *testing.T) {
	if code, out, _ := run(t, "version"); code != 0 || out != "triage dev\n" {
		t.Errorf("exit %d, stdout %q", code, out)
	}
}
