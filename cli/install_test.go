package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// config16 is the shape of `containerd config default` on 1.6/1.7, cut down, with a comment
// install must keep.
const config16 = `version = 2
root = "/var/lib/containerd"

# operator comment: keep me
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.6"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
          runtime_type = "io.containerd.runc.v2"
          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
            SystemdCgroup = true
`

// config2 is the same for containerd 2.x (version 3).
const config2 = `version = 3
root = '/var/lib/containerd'

# operator comment: keep me
[plugins]
  [plugins.'io.containerd.cri.v1.runtime']
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes]
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
          runtime_type = 'io.containerd.runc.v2'
          [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
            SystemdCgroup = true
`

// node is a fake node root with built binaries in from.
type fakeNode struct {
	root, from, policy string
}

func newFakeNode(t *testing.T) fakeNode {
	t.Helper()
	n := fakeNode{root: t.TempDir(), from: t.TempDir()}
	for _, b := range binaries {
		if err := os.WriteFile(filepath.Join(n.from, b), []byte("#!/bin/true "+b), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	n.policy = filepath.Join("..", "configs", "triage.toml")
	return n
}

func (n fakeNode) write(t *testing.T, path, data string) {
	t.Helper()
	p := filepath.Join(n.root, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (n fakeNode) read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.root, path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (n fakeNode) install(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return run(t, append([]string{"install", "--root", n.root, "--from", n.from}, args...)...)
}

const ctrdConfig = "/etc/containerd/config.toml"

func TestInstallPatchesContainerdConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		config  string
		version containerdVersion
	}{
		{"containerd 1.6", config16, containerd16},
		{"containerd 2.x", config2, containerd2x},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newFakeNode(t)
			n.write(t, ctrdConfig, tc.config)
			code, out, errOut := n.install(t, "--policy", n.policy)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, want := range []string{"installed containerd-shim-triage-v2", "installed triage", "installed policy", "registered runtime triage"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			got := n.read(t, ctrdConfig)
			if !strings.HasPrefix(got, tc.config) {
				t.Errorf("the operator's config was not kept verbatim:\n%s", got)
			}
			cfg, err := parseTOML("patched", []byte(got))
			if err != nil {
				t.Fatal(err)
			}
			rt := runtimeTable(tc.version, cfg)
			if rt == nil || rt["runtime_type"] != "io.containerd.triage.v2" {
				t.Fatalf("patched config has no triage runtime:\n%s", got)
			}
			if runc := runtimeTable(tc.version, cfg)["options"].(map[string]any); runc["ConfigPath"] != "/etc/triage/triage.toml" {
				t.Errorf("ConfigPath = %v, want the node path /etc/triage/triage.toml (not under --root)", runc["ConfigPath"])
			}
			if st, err := os.Stat(filepath.Join(n.root, ctrdConfig)); err != nil || st.Mode().Perm() != 0o600 {
				t.Errorf("config mode changed: %v %v", st.Mode(), err)
			}
			for _, b := range binaries {
				if st, err := os.Stat(filepath.Join(n.root, "usr/local/bin", b)); err != nil || st.Mode().Perm() != 0o755 {
					t.Errorf("%s not installed 0755: %v", b, err)
				}
			}
			if p, _ := os.ReadFile(n.policy); n.read(t, "/etc/triage/triage.toml") != string(p) {
				t.Error("policy not installed")
			}

			// A second run changes nothing.
			code, out, errOut = n.install(t, "--policy", n.policy)
			if code != 0 || !strings.Contains(out, "nothing to do") {
				t.Errorf("second install: exit %d, stdout %q, stderr %q; want nothing to do", code, out, errOut)
			}
			if n.read(t, ctrdConfig) != got {
				t.Error("second install changed the containerd config")
			}
			if strings.Contains(out, "restart containerd") {
				t.Errorf("second install asks for a restart: %s", out)
			}
		})
	}
}

// An upgrade replaces the binaries by rename (running ones are not written into) and needs
// no containerd restart.
func TestInstallUpgradeNeedsNoRestart(t *testing.T) {
	n := newFakeNode(t)
	n.write(t, ctrdConfig, config16)
	if code, _, errOut := n.install(t, "--policy", n.policy); code != 0 {
		t.Fatalf("install: %s", errOut)
	}
	dst := filepath.Join(n.root, "usr/local/bin/triage-router")
	before, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n.from, "triage-router"), []byte("new build"), 0o755); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := n.install(t, "--policy", n.policy)
	if code != 0 || !strings.Contains(out, "installed triage-router") || !strings.Contains(out, "needs no restart") || strings.Contains(out, "restart containerd") {
		t.Fatalf("upgrade: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	after, err := os.Stat(dst)
	if err != nil || os.SameFile(before, after) {
		t.Errorf("the binary was written in place, not renamed over (%v)", err)
	}
}

func TestInstallCreatesContainerdConfig(t *testing.T) {
	for _, v := range []containerdVersion{containerd16, containerd2x} {
		t.Run(string(v), func(t *testing.T) {
			n := newFakeNode(t)
			code, _, errOut := n.install(t, "--policy", n.policy, "--bin-dir", "/opt/bin")
			if code != exitError || !strings.Contains(errOut, "pass --version") {
				t.Fatalf("without --version: exit %d, stderr %q", code, errOut)
			}
			if _, err := os.Stat(filepath.Join(n.root, "opt/bin/triage")); err == nil {
				t.Error("a refused install wrote the binaries")
			}
			if code, _, errOut = n.install(t, "--policy", n.policy, "--bin-dir", "/opt/bin", "--version", string(v)); code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			cfg, err := parseTOML("created", []byte(n.read(t, ctrdConfig)))
			if err != nil {
				t.Fatal(err)
			}
			if cfg["version"] != int64(v.configVersion()) || runtimeTable(v, cfg) == nil {
				t.Errorf("created config %v lacks version %d or the triage runtime", cfg, v.configVersion())
			}
			if _, err := os.Stat(filepath.Join(n.root, "opt/bin/containerd-shim-triage-v2")); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestInstallRefuses(t *testing.T) {
	differing := config16 + `
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.triage]
          runtime_type = "io.containerd.runsc.v1"
`
	inline := "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  runtimes = { runc = { runtime_type = \"io.containerd.runc.v2\" } }\n"
	for _, tc := range []struct {
		name     string
		config   string
		policy   string // installed before
		args     []string
		err      error
		inStderr string
	}{
		{"different triage runtime", differing, "", nil, errRuntimeDiffers, `runtime_type = io.containerd.runsc.v1, want io.containerd.triage.v2`},
		{"config version 1", "root = \"/var/lib/containerd\"\n", "", nil, errConfigVersion, "containerd config migrate"},
		{"version flag disagrees", config16, "", []string{"--version", "2.x"}, errConfigVersion, "not containerd 2.x's layout"},
		{"inline runtimes table", inline, "", nil, nil, "add the output of `triage config containerd --version 1.6` by hand"},
		{"broken config", "version = 2\n[plugins\n", "", nil, nil, "config.toml:2:"},
		{"installed policy differs", config16, "default_tier = \"trusted\"\n[tier.trusted]\nstrength = 1\nruntime = \"io.containerd.runc.v2\"\n", nil, errPolicyDiffers, "--replace-policy"},
		{"missing policy file", config16, "", []string{"--policy", "testdata/none.toml"}, nil, "none.toml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newFakeNode(t)
			n.write(t, ctrdConfig, tc.config)
			if tc.policy != "" {
				n.write(t, "/etc/triage/triage.toml", tc.policy)
			}
			args := tc.args
			if !strings.Contains(strings.Join(args, " "), "--policy") {
				args = append(args, "--policy", n.policy)
			}
			in := installer{root: n.root, from: n.from, binDir: "/usr/local/bin", containerdConfig: ctrdConfig, out: &bytes.Buffer{}}
			code, _, errOut := n.install(t, args...)
			if code != exitError || !strings.Contains(errOut, tc.inStderr) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errOut, exitError, tc.inStderr)
			}
			if tc.err != nil {
				in.policySrc = n.policy
				for i, a := range tc.args {
					if a == "--version" {
						in.version, _ = parseContainerdVersion(tc.args[i+1])
					}
				}
				if err := in.run(); !errors.Is(err, tc.err) {
					t.Errorf("error %v, want %v", err, tc.err)
				}
			}
			if got := n.read(t, ctrdConfig); got != tc.config {
				t.Errorf("a refused install changed the containerd config:\n%s", got)
			}
			if _, err := os.Stat(filepath.Join(n.root, "usr/local/bin/triage")); err == nil {
				t.Error("a refused install wrote the binaries")
			}
		})
	}
}

func TestInstallAcceptsSameTriageRuntime(t *testing.T) {
	n := newFakeNode(t)
	snippet, err := containerdSnippet(containerd2x, "/etc/triage/triage.toml")
	if err != nil {
		t.Fatal(err)
	}
	n.write(t, ctrdConfig, config2+"\n"+snippet)
	code, out, errOut := n.install(t, "--policy", n.policy)
	if code != 0 || strings.Contains(out, "registered") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want success without touching the config", code, out, errOut)
	}
}
