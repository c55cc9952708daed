package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runIn runs the triage command in-process with stdin.
func runIn(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

const privilegedTenantPod = `apiVersion: v1
kind: Pod
metadata: {name: dind, namespace: tenant-a}
spec:
  initContainers: [{name: init, image: registry.internal/busybox:1}]
  containers:
  - name: docker
    image: registry.internal/docker:27-dind
    securityContext: {privileged: true}
`

func TestExplainManifest(t *testing.T) {
	// A manifest is told by its content, whatever its file's name.
	file := filepath.Join(t.TempDir(), "pod.txt")
	if err := os.WriteFile(file, []byte(privilegedTenantPod), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
	}{
		{"stdin", privilegedTenantPod, []string{"-"}},
		{"file", "", []string{file}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runIn(t, tc.stdin, append([]string{"explain", "--config", examplePolicy, "--sandbox-image", "registry.internal/pause:3"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, want := range []string{
				"# Each pod is decided as Triage decides it on the node",
				"== Pod tenant-a/dind, container POD (sandbox)\naction:   run\ntier:     trusted\n",
				"== Pod tenant-a/dind, container init (init)\naction:   run\ntier:     trusted\n",
				"== Pod tenant-a/dind, container docker (container)\naction:   deny\nrule:     deny-privileged-tenants",
				"assumed:  runAsUser unset: the image's USER is not known off-node",
				"assumed:  the image's registry digest is not known off-node",
				"assumed:  seccompProfile unset",
				"assumed:  node facts",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

func TestExplainManifestJSON(t *testing.T) {
	code, out, errOut := runIn(t, privilegedTenantPod, "explain", "--config", examplePolicy, "--output", "json", "-")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got []struct {
		Workload    struct{ Kind, Name, Namespace string }
		Container   string
		Type        string
		Action      string
		Rule        string
		Assumptions []string
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not a JSON array: %v\n%s", err, out)
	}
	if len(got) != 3 {
		t.Fatalf("%d objects, want 3 (sandbox, init, docker)", len(got))
	}
	last := got[2]
	if last.Workload.Kind != "Pod" || last.Workload.Namespace != "tenant-a" || last.Container != "docker" || last.Action != "deny" || last.Rule != "deny-privileged-tenants" || len(last.Assumptions) == 0 {
		t.Errorf("docker: %+v", last)
	}
}

func TestExplainManifestErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stdin string
		want  string
	}{
		{"unknown field", strings.Replace(privilegedTenantPod, "privileged: true", "privilegd: true", 1), `document 1 (v1 Pod): error unmarshaling JSON: while decoding JSON: json: unknown field "privilegd"`},
		{"not a manifest on stdin", `{"ociVersion": "1.2.0"}`, "stdin is not a Kubernetes manifest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runIn(t, tc.stdin, "explain", "--config", examplePolicy, "-")
			if code != exitError || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q, want %q", code, errOut, tc.want)
			}
		})
	}
}

// TestShippedPolicyTests runs `triage test` on every shipped test file: a policy change
// that breaks a documented decision fails here (and in make test).
func TestShippedPolicyTests(t *testing.T) {
	files, err := filepath.Glob("../configs/tests/*.test.toml")
	if err != nil || len(files) < 4 {
		t.Fatalf("test files %v: %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			code, out, errOut := run(t, "test", f)
			if code != 0 {
				t.Errorf("exit %d\n%s%s", code, out, errOut)
			}
			if strings.Contains(out, "FAIL") || strings.Count(out, "PASS") < 4 {
				t.Errorf("want at least 4 passing rows and no failing one:\n%s", out)
			}
		})
	}
}

func TestTestCommand(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("pod.yaml", privilegedTenantPod)
	policy, _ := filepath.Abs(examplePolicy)
	head := "policy = \"" + policy + "\"\nsandbox_image = \"registry.internal/pause:3\"\n"
	pass := "[[case]]\nname = \"privileged\"\nmanifest = \"pod.yaml\"\ncontainer = \"docker\"\naction = \"deny\"\nrule = \"deny-privileged-tenants\"\n\n" +
		"[[case]]\nname = \"init runs\"\nmanifest = \"pod.yaml\"\ncontainer = \"init\"\naction = \"run\"\ntier = \"trusted\"\n"
	for _, tc := range []struct {
		name     string
		file     string
		wantCode int
		want     []string
	}{
		{"passing", head + pass, exitOK, []string{"privileged  docker", "PASS"}},
		{"a failing case", head + pass + "\n[[case]]\nname = \"wrongly expected\"\nmanifest = \"pod.yaml\"\naction = \"run\"\n", exitError,
			[]string{"wrongly expected  init       run                             run trusted (default)           PASS", "wrongly expected  docker     run                             deny (deny-privileged-tenants)  FAIL", "1 FAIL row(s)"}},
		{"unknown key", head + pass + "\n[[case]]\nname = \"x\"\nmanfest = \"pod.yaml\"\naction = \"run\"\n", exitUsage, []string{"case.test.toml:19: unknown key case.manfest"}},
		{"bad action", head + pass + "\n[[case]]\nname = \"x\"\nmanifest = \"pod.yaml\"\naction = \"allow\"\n", exitUsage, []string{"case.test.toml:17: action \"allow\": use run or deny"}},
		{"both manifest and spec", head + "[[case]]\nname = \"x\"\nmanifest = \"pod.yaml\"\nspec = \"c.json\"\naction = \"run\"\n", exitUsage, []string{"case.test.toml:3: give one of manifest or spec"}},
		{"no such container", head + "[[case]]\nname = \"x\"\nmanifest = \"pod.yaml\"\ncontainer = \"nope\"\naction = \"run\"\n", exitUsage, []string{`case "x": container "nope" is not in pod.yaml: have POD, init, docker`}},
		{"TOML syntax", head + "[[case]\n", exitUsage, []string{"case.test.toml:3:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := write("case.test.toml", tc.file)
			code, out, errOut := run(t, "test", f)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d\n%s%s", code, tc.wantCode, out, errOut)
			}
			for _, want := range tc.want {
				if !strings.Contains(out+errOut, want) {
					t.Errorf("output lacks %q:\n%s%s", want, out, errOut)
				}
			}
		})
	}
}

func TestTestCommandSpecCase(t *testing.T) {
	dir := t.TempDir()
	policy, _ := filepath.Abs(examplePolicy)
	spec, _ := filepath.Abs(corpus + "mount-docker-sock.json")
	f := filepath.Join(dir, "spec.test.toml")
	body := "policy = \"" + policy + "\"\n[[case]]\nname = \"docker.sock\"\nspec = \"" + spec + "\"\nnamespace = \"k8s.io\"\naction = \"run\"\ntier = \"isolated\"\nrule = \"host-access\"\n"
	if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := run(t, "test", f); code != 0 {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
}
