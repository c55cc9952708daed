package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/triage-runtime/triage/classifier"
	"github.com/triage-runtime/triage/hardening"
	"github.com/triage-runtime/triage/k8s"
	"github.com/triage-runtime/triage/node"
	"github.com/triage-runtime/triage/policy"
)

// explanation is what explain prints: the decision and, for a workload that runs, the
// hardening controls its tier applies on this host.
type explanation struct {
	classifier.Decision
	Controls []hardening.Control `json:"controls,omitempty"`
	// HardeningError is set when a control refuses the workload: the shim does not start it.
	HardeningError string `json:"hardening_error,omitempty"`
	// Reach is what the spec's host-touching fields reach on this node, as judged.
	Reach *classifier.Reach `json:"reach,omitempty"`
}

// taskDir is the directory containerd's v2 runtime keeps bundles in, as
// .../io.containerd.runtime.v2.task/NAMESPACE/ID.
const taskDir = "io.containerd.runtime.v2.task"

func explain(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("explain", flag.ContinueOnError)
	fset.SetOutput(stderr)
	config := fset.String("config", defaultPolicy(), "policy `file` ($TRIAGE_POLICY, else "+policy.DefaultPath+")")
	namespace := fset.String("namespace", "", "containerd `namespace` (default: taken from a containerd bundle path, else \"default\")")
	image := fset.String("image", "", "image `reference` as containerd records it (none: the workload has no image)")
	cri := fset.Bool("cri", true, "in containerd namespace k8s.io, take the workload as made by the CRI plugin, so its io.kubernetes.cri.* annotations are believed (the shim checks containerd's record)")
	imageDigest := fset.String("image-digest", "", "`digest` of the content containerd's record of the image holds (sha256:…)")
	id := fset.String("id", "", "container `id` (default: the bundle folder's name)")
	output := fset.String("output", "text", "output `format`: text or json")
	sandboxImage := fset.String("sandbox-image", k8s.DefaultSandboxImage, "containerd's sandbox_image, the pause container of a manifest's pods")
	labels := keyValues{}
	fset.Var(labels, "label", "containerd container label `KEY=VALUE` (repeatable)")
	nsLabels := keyValues{}
	fset.Var(nsLabels, "namespace-label", "label `KEY=VALUE` of the containerd namespace (repeatable)")
	fset.Usage = func() {
		fmt.Fprintf(fset.Output(), "usage: triage explain [flags] BUNDLE_DIR|CONFIG_JSON|MANIFEST|-\n\n"+
			"A MANIFEST (a file, or - for stdin) holds Kubernetes objects in YAML or JSON: each\n"+
			"container of its Pods and workloads' pod templates is decided. --namespace, --image,\n"+
			"--image-digest, --id, --label and --namespace-label apply to an OCI spec only.\n\nflags:\n")
		fset.PrintDefaults()
	}
	positional, err := parse(fset, args)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		return usageError(fset, "want one BUNDLE_DIR, CONFIG_JSON, MANIFEST or -, got %d arguments", len(positional))
	}
	if *output != "text" && *output != "json" {
		return usageError(fset, "--output %q: use text or json", *output)
	}
	p, err := loadPolicy(*config)
	if err != nil {
		return err
	}
	if positional[0] == "-" {
		data, err := io.ReadAll(stdin)
		if err != nil {
			return fmt.Errorf("read stdin: %w", err)
		}
		if !k8s.IsManifest(data) {
			return fmt.Errorf("stdin is not a Kubernetes manifest (no apiVersion and kind): give an OCI spec as a file or bundle directory")
		}
		return explainManifest(stdout, p, data, manifestOptions(*sandboxImage), *output)
	}
	specPath, err := specFile(positional[0])
	if err != nil {
		return err
	}
	data, err := os.ReadFile(specPath)
	if err != nil {
		return fmt.Errorf("read OCI spec: %w", err)
	}
	// A manifest is told apart by its content (apiVersion and kind), not its name.
	if k8s.IsManifest(data) {
		return explainManifest(stdout, p, data, manifestOptions(*sandboxImage), *output)
	}
	facts := classifier.Facts{
		Namespace:       *namespace,
		NamespaceLabels: nsLabels,
		Labels:          labels,
		Image:           *image,
		ImageDigest:     *imageDigest,
	}
	if facts.Namespace == "" {
		facts.Namespace = bundleNamespace(filepath.Dir(specPath))
	}
	facts.CRI = *cri && facts.Namespace == classifier.CRINamespace
	bundle := filepath.Dir(specPath)
	facts.ID = *id
	if facts.ID == "" {
		facts.ID = filepath.Base(bundle)
	}
	if spec, unknown, err := classifier.DecodeSpec(data); err != nil {
		fmt.Fprintf(stderr, "triage explain: %s is not a valid OCI spec: %v\n", specPath, err)
	} else {
		facts.Spec, facts.UnknownFields = spec, unknown
		facts.Reach = node.Host.Resolve(spec, node.Workload{
			Bundle: bundle, ID: facts.ID,
			Sensitive: node.Sensitive("", p.Source, p.AuditLog, bundle, ""),
		})
	}
	e := explanation{Decision: classifier.Classify(p, facts), Reach: facts.Reach}
	if w := e.Would; w != nil && w.Action == classifier.ActionRun && facts.Spec != nil {
		if wt, ok := p.Tier(w.Tier); ok {
			e.Decision = e.WouldBeRefused(hardening.Preview(facts.Spec, wt, node.Host.HardeningHost(wt, facts.ID, facts.Reach, facts.UnknownFields)))
		}
	}
	if tier, ok := p.Tier(e.Tier); ok && e.Action == classifier.ActionRun && facts.Spec != nil {
		controls, err := hardening.Apply(facts.Spec, tier, node.Host.HardeningHost(tier, facts.ID, facts.Reach, facts.UnknownFields))
		e.Controls = controls
		if err != nil {
			e.HardeningError = err.Error()
		}
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(e)
	}
	printDecision(stdout, p, e.Decision)
	printControls(stdout, e)
	return nil
}

func printControls(w io.Writer, e explanation) {
	if len(e.Controls) == 0 {
		return
	}
	fmt.Fprintf(w, "controls: %d\n", len(e.Controls))
	for _, c := range e.Controls {
		fmt.Fprintf(w, "  - %-17s %-14s %s\n", c.ID, c.Status, c.Detail)
	}
	if e.HardeningError != "" {
		fmt.Fprintf(w, "refused:  %s\n", e.HardeningError)
	}
}

// manifestOptions are this machine's node facts for deriving a manifest's specs.
func manifestOptions(sandboxImage string) k8s.Options {
	return k8s.Options{AppArmor: node.Host.AppArmor(), SandboxImage: sandboxImage}
}

// specFile returns the config.json of a bundle directory, or the file given.
func specFile(arg string) (string, error) {
	st, err := os.Stat(arg)
	if err != nil {
		return "", fmt.Errorf("%w: give a bundle directory or its config.json", err)
	}
	if st.IsDir() {
		return filepath.Join(arg, "config.json"), nil
	}
	return arg, nil
}

// bundleNamespace returns the containerd namespace of a bundle under containerd's task
// directory, or "default".
func bundleNamespace(bundle string) string {
	abs, err := filepath.Abs(bundle)
	if err != nil {
		return "default"
	}
	nsDir := filepath.Dir(abs)
	if filepath.Base(filepath.Dir(nsDir)) == taskDir {
		return filepath.Base(nsDir)
	}
	return "default"
}

func printDecision(w io.Writer, p *policy.Policy, d classifier.Decision) {
	rule := d.Rule
	if src := p.RuleSource(d.Rule); src != "" {
		rule += " (" + src + ")"
	}
	fmt.Fprintf(w, "action:   %s\n", d.Action)
	if d.Action == classifier.ActionRun {
		fmt.Fprintf(w, "tier:     %s\n", d.Tier)
		fmt.Fprintf(w, "runtime:  %s\n", d.Runtime)
	}
	fmt.Fprintf(w, "rule:     %s\n", rule)
	fmt.Fprintf(w, "reason:   %s\n", d.Reason)
	if d.Would != nil {
		fmt.Fprintf(w, "would:    %s by rule %s (audit mode: recorded, not applied): %s\n", d.Would.Summary(), d.Would.Rule, d.Would.Reason)
	}
	if err := d.Err(); err != nil {
		fmt.Fprintf(w, "error:    %v\n", err)
	}
	if len(d.Findings) == 0 {
		fmt.Fprintf(w, "findings: none\n")
		return
	}
	fmt.Fprintf(w, "findings: %d\n", len(d.Findings))
	for _, f := range d.Findings {
		fmt.Fprintf(w, "  - %s: %s\n", f.ID, f.Evidence)
	}
}
