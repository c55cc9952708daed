package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/pelletier/go-toml/v2"

	"github.com/triage-runtime/triage/classifier"
	"github.com/triage-runtime/triage/k8s"
	"github.com/triage-runtime/triage/policy"
)

// testFile is a `triage test` file: a policy and the decisions it must make.
type testFile struct {
	// Policy is the policy file, relative to the test file. Required.
	Policy string `toml:"policy"`
	// SandboxImage is containerd's sandbox_image on the nodes; "" is k8s.DefaultSandboxImage.
	SandboxImage string     `toml:"sandbox_image"`
	Cases        []testCase `toml:"case"`
	// lines[i] is the line of Cases[i]'s [[case]] header.
	lines []int
}

// testCase is one expected decision.
type testCase struct {
	// Name says what the case checks. Required, unique.
	Name string `toml:"name"`
	// Manifest is a Kubernetes manifest, relative to the test file; or
	Manifest string `toml:"manifest"`
	// Spec is an OCI config.json, relative to the test file, decided in containerd
	// namespace Namespace ("default" when unset) with image Image.
	Spec      string `toml:"spec"`
	Namespace string `toml:"namespace"`
	Image     string `toml:"image"`
	// Container picks a manifest's container by name ("POD" is the sandbox); "": every
	// container (not the sandbox) must match.
	Container string `toml:"container"`
	// Action is "run" or "deny". Required.
	Action classifier.Action `toml:"action"`
	// Tier is the tier a run must get ("": any).
	Tier string `toml:"tier"`
	// Rule is the rule that must decide ("": any).
	Rule string `toml:"rule"`
}

// errMalformedTest marks a test file that cannot be run: exit code 2.
var errMalformedTest = errors.New("malformed test file")

// exitCodeError is an error Main prints and exits with code for.
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string { return e.err.Error() }
func (e *exitCodeError) Unwrap() error { return e.err }

// errCasesFailed: a case's decision was not the expected one: exit code 1.
var errCasesFailed = errors.New("decisions differ from the cases")

func testCmd(args []string, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("test", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() {
		fmt.Fprintf(fset.Output(), `usage: triage test FILE...

FILE is a TOML file of cases, each a manifest (or OCI spec) and the decision the policy
must make for it; see configs/tests/triage.test.toml. Hardening is judged as on a node where
every tier's delegate can apply every control, so only the policy refuses. Exit code 1
when a case fails, 2 when a file is malformed.
`)
	}
	files, err := parse(fset, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usageError(fset, "want a test FILE")
	}
	failed := 0
	for _, f := range files {
		n, err := runTestFile(f, stdout)
		if err != nil {
			return &exitCodeError{code: exitUsage, err: err}
		}
		failed += n
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d FAIL row(s) above", errCasesFailed, failed)
	}
	return nil
}

// loadTestFile parses a test file strictly and checks its cases; errors name file:line.
func loadTestFile(path string) (*testFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformedTest, err)
	}
	var tf testFile
	if err := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields().Decode(&tf); err != nil {
		var strict *toml.StrictMissingError
		var de *toml.DecodeError
		switch {
		case errors.As(err, &strict) && len(strict.Errors) > 0:
			line, _ := strict.Errors[0].Position()
			return nil, fmt.Errorf("%w: %s:%d: unknown key %s: use policy, sandbox_image and [[case]] keys name, manifest, spec, namespace, image, container, action, tier, rule",
				errMalformedTest, path, line, strings.Join(strict.Errors[0].Key(), "."))
		case errors.As(err, &de):
			line, _ := de.Position()
			return nil, fmt.Errorf("%w: %s:%d: %v", errMalformedTest, path, line, de)
		}
		return nil, fmt.Errorf("%w: %s: %v", errMalformedTest, path, err)
	}
	tf.lines = caseLines(data)
	if tf.Policy == "" {
		return nil, fmt.Errorf("%w: %s: no policy: name the policy file, relative to the test file", errMalformedTest, path)
	}
	if len(tf.Cases) == 0 {
		return nil, fmt.Errorf("%w: %s: no [[case]]", errMalformedTest, path)
	}
	names := map[string]bool{}
	for i, c := range tf.Cases {
		var problem string
		switch {
		case c.Name == "":
			problem = "case has no name"
		case names[c.Name]:
			problem = fmt.Sprintf("case name %q is used twice", c.Name)
		case (c.Manifest == "") == (c.Spec == ""):
			problem = "give one of manifest or spec"
		case c.Action != classifier.ActionRun && c.Action != classifier.ActionDeny:
			problem = fmt.Sprintf("action %q: use run or deny", c.Action)
		case c.Action == classifier.ActionDeny && c.Tier != "":
			problem = "a denial has no tier: remove tier"
		case c.Manifest != "" && (c.Namespace != "" || c.Image != ""):
			problem = "namespace and image are for a spec: a manifest names its own"
		case c.Spec != "" && c.Container != "":
			problem = "container is for a manifest"
		}
		if problem != "" {
			return nil, fmt.Errorf("%w: %s: %s", errMalformedTest, tf.at(path, i), problem)
		}
		names[c.Name] = true
	}
	return &tf, nil
}

// at is "path:line" of case i.
func (tf *testFile) at(path string, i int) string {
	if i < len(tf.lines) {
		return fmt.Sprintf("%s:%d", path, tf.lines[i])
	}
	return path
}

// caseLines returns the line of each [[case]] header.
func caseLines(data []byte) []int {
	var out []int
	for i, l := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(l) == "[[case]]" {
			out = append(out, i+1)
		}
	}
	return out
}

// relative resolves a path of a test file against the file's folder.
func relative(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// outcome is what one container got.
type outcome struct {
	container string
	d         classifier.Decision
}

// runTestFile runs a test file's cases and prints a table; it returns how many failed. An
// error is a malformed file or a case that cannot be decided (unreadable manifest).
func runTestFile(path string, w io.Writer) (int, error) {
	tf, err := loadTestFile(path)
	if err != nil {
		return 0, err
	}
	dir := filepath.Dir(path)
	p, err := loadPolicy(relative(dir, tf.Policy))
	if err != nil {
		return 0, fmt.Errorf("%w: %s: policy: %w", errMalformedTest, path, err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "# %s (policy %s)\n", path, p.Source)
	fmt.Fprintf(tw, "CASE\tCONTAINER\tEXPECTED\tGOT\tRESULT\n")
	failed := 0
	for i, c := range tf.Cases {
		got, err := decideCase(p, dir, tf, c)
		if err != nil {
			return 0, fmt.Errorf("%w: %s: case %q: %w", errMalformedTest, tf.at(path, i), c.Name, err)
		}
		for _, o := range got {
			result := "PASS"
			if !c.matches(o.d) {
				result = "FAIL"
				failed++
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Name, o.container, c.expected(), summary(o.d), result)
		}
	}
	if err := tw.Flush(); err != nil {
		return 0, err
	}
	return failed, nil
}

func (c testCase) matches(d classifier.Decision) bool {
	return d.Action == c.Action && (c.Tier == "" || d.Tier == c.Tier) && (c.Rule == "" || d.Rule == c.Rule)
}

func (c testCase) expected() string {
	s := string(c.Action)
	if c.Tier != "" {
		s += " " + c.Tier
	}
	if c.Rule != "" {
		s += " (" + c.Rule + ")"
	}
	return s
}

func summary(d classifier.Decision) string {
	s := string(d.Action)
	if d.Action == classifier.ActionRun {
		s += " " + d.Tier
	}
	return s + " (" + d.Rule + ")"
}

// decideCase returns the decisions a case is checked against.
func decideCase(p *policy.Policy, dir string, tf *testFile, c testCase) ([]outcome, error) {
	if c.Spec != "" {
		return decideSpecCase(p, dir, c)
	}
	data, err := os.ReadFile(relative(dir, c.Manifest))
	if err != nil {
		return nil, err
	}
	all, _, err := decideManifest(p, data, k8s.Options{AppArmor: true, SandboxImage: tf.SandboxImage}, capableNode)
	if err != nil {
		return nil, err
	}
	var out []outcome
	var names []string
	for _, e := range all {
		names = append(names, e.Name)
		if c.Container == e.Name || c.Container == "" && e.Type != k8s.TypeSandbox {
			out = append(out, outcome{container: e.Name, d: e.Decision})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("container %q is not in %s: have %s", c.Container, c.Manifest, strings.Join(names, ", "))
	}
	return out, nil
}

func decideSpecCase(p *policy.Policy, dir string, c testCase) ([]outcome, error) {
	specPath := relative(dir, c.Spec)
	data, err := os.ReadFile(specPath)
	if err != nil {
		return nil, err
	}
	spec, unknown, err := classifier.DecodeSpec(data)
	if err != nil {
		return nil, fmt.Errorf("%s is not a valid OCI spec: %w", c.Spec, err)
	}
	ns := c.Namespace
	if ns == "" {
		ns = "default"
	}
	bundle := filepath.Dir(specPath)
	f := classifier.Facts{
		ID: filepath.Base(bundle), Spec: spec, Namespace: ns, CRI: ns == classifier.CRINamespace,
		Image: c.Image, Reach: classifier.Lexical(spec, bundle), UnknownFields: unknown,
	}
	e := harden(p, classifier.Classify(p, f), f, capableNode)
	return []outcome{{container: filepath.Base(c.Spec), d: e.Decision}}, nil
}
