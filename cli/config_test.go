package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSnippetCopies keeps configs/containerd/ identical to the embedded snippets.
func TestSnippetCopies(t *testing.T) {
	for _, v := range []containerdVersion{containerd16, containerd2x} {
		embedded, err := snippets.ReadFile(v.snippetFile())
		if err != nil {
			t.Fatal(err)
		}
		doc := filepath.Join("..", "configs", "containerd", filepath.Base(v.snippetFile()))
		copied, err := os.ReadFile(doc)
		if err != nil || string(copied) != string(embedded) {
			t.Errorf("%s differs from cli/%s (%v): run `go generate ./cli`", doc, v.snippetFile(), err)
		}
	}
}

func TestConfigContainerd(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		version containerdVersion
		path    string
	}{
		{"default is 2.x", nil, containerd2x, "/etc/triage/triage.toml"},
		{"1.6", []string{"--version", "1.6"}, containerd16, "/etc/triage/triage.toml"},
		{"1.7 is 1.6's layout", []string{"--version=1.7"}, containerd16, "/etc/triage/triage.toml"},
		{"config path", []string{"--version", "2.x", "--config-path", "/opt/triage/p.toml"}, containerd2x, "/opt/triage/p.toml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, append([]string{"config", "containerd"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			rt, err := triageRuntime(tc.version, []byte(out))
			if err != nil || rt == nil {
				t.Fatalf("output has no triage runtime for %s (%v):\n%s", tc.version, err, out)
			}
			opts, _ := rt["options"].(map[string]any)
			if rt["runtime_type"] != "io.containerd.triage.v2" || opts["ConfigPath"] != tc.path ||
				opts["TypeUrl"] != "io.containerd.triage.v2.options" {
				t.Errorf("runtime table %v, want type io.containerd.triage.v2 and ConfigPath %s", rt, tc.path)
			}
			for _, k := range []string{"pod_annotations", "container_annotations"} {
				if a, _ := rt[k].([]any); len(a) != 1 || a[0] != "triage.io/*" {
					t.Errorf("%s = %v, want [triage.io/*]", k, rt[k])
				}
			}
		})
	}
}

func TestConfigContainerdErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		inStderr string
	}{
		{"no subcommand", []string{"config"}, exitUsage, "usage: triage config containerd"},
		{"unknown subcommand", []string{"config", "crio"}, exitUsage, "usage: triage config containerd"},
		{"unknown version", []string{"config", "containerd", "--version", "1.5"}, exitUsage, "unknown containerd version"},
		{"relative path", []string{"config", "containerd", "--config-path", "triage.toml"}, exitError, "absolute path"},
		{"quote in path", []string{"config", "containerd", "--config-path", `/etc/"x.toml`}, exitError, "no quotes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.inStderr) || out != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, out, errOut, tc.code, tc.inStderr)
			}
		})
	}
}

// TestExamplePolicies checks every policy in configs/examples with `triage check`.
func TestExamplePolicies(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "configs", "examples", "*.toml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no example policies: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if code, out, errOut := run(t, "check", "--config", f); code != 0 || !strings.HasPrefix(out, "ok: ") {
				t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
			}
		})
	}
}
