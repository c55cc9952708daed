// Command demo shows Triage's main job on this machine: it starts a private containerd 2.x
// with Triage installed, runs a few workloads through io.containerd.triage.v2, and prints
// where each one went and why. Everything it starts lives under a temporary folder and is
// stopped at the end. Run it with `make demo`.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/triage-runtime/triage/e2e/harness"
)

const policyTOML = `# demo policy: runc for ordinary workloads, gVisor for untrusted images or on request,
# privileged containers denied.
default_tier = "trusted"
audit_log = "%s"

[tier.trusted]
strength = 10
runtime = "io.containerd.runc.v2"

[tier.sandboxed]
strength = 20
runtime = "io.containerd.runsc.v1"
config_path = "%s"

[[rule]]
name = "deny-privileged"
action = "deny"
reason = "privileged containers are not allowed on this node"
  [rule.match]
  findings = ["privileged"]

[[rule]]
name = "untrusted-registry"
tier = "sandboxed"
reason = "images from registry.untrusted.example run in gVisor"
  [rule.match]
  images = ["registry.untrusted.example/*"]
`

const untrusted = "registry.untrusted.example/tool:1"

type workload struct {
	name  string
	what  string
	args  []string // ctr run flags before the image
	image string
	cmd   []string
}

var workloads = []workload{
	{"web", "an ordinary image", nil, harness.BusyboxImage, []string{"uname", "-sr"}},
	{"tool", "an image from an untrusted registry", nil, untrusted, []string{"sh", "-c", "sleep 0.3; uname -r"}},
	{"batch", "asks for gVisor (annotation triage.io/tier=sandboxed)", []string{"--annotation", "triage.io/tier=sandboxed"}, harness.BusyboxImage, []string{"sh", "-c", "sleep 0.3; uname -r"}},
	{"debug", "runs --privileged", []string{"--privileged"}, harness.BusyboxImage, []string{"true"}},
	{"sneaky", "untrusted image asking for runc (triage.io/tier=trusted)", []string{"--annotation", "triage.io/tier=trusted"}, untrusted, []string{"true"}},
}

func main() {
	p := &harness.Program{}
	defer p.Close()
	env, bin := harness.ProgramEnv(p, "demo")
	dir, err := os.MkdirTemp("", "triage-demo")
	if err != nil {
		p.Fatalf("%v", err)
	}
	p.Cleanup(func() { os.RemoveAll(dir) })

	fmt.Println("starting a private containerd 2.x with Triage (runtime io.containerd.triage.v2) ...")
	d := harness.StartContainerd(p, env, harness.V2, harness.Options{ExtraPath: []string{bin}})
	policy, audit := filepath.Join(dir, "triage.toml"), filepath.Join(dir, "decisions.jsonl")
	if err := os.WriteFile(policy, []byte(fmt.Sprintf(policyTOML, audit, d.RunscConfig())), 0o644); err != nil {
		p.Fatalf("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, stderr, code, err := d.Ctr(ctx, "images", "tag", harness.BusyboxImage, untrusted); err != nil || code != 0 {
		p.Fatalf("tag image: %v %s", err, stderr)
	}
	fmt.Printf("policy: %s\n\n%s\n", policy, indent(fmt.Sprintf(policyTOML, audit, d.RunscConfig())))

	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tWHAT\tDECISION\tTIER → RUNTIME\tRULE\tWHAT IT SAW / WHY")
	for _, w := range workloads {
		id := d.ID(w.name)
		args := append(append([]string{"run", "--rm", "--runtime", "io.containerd.triage.v2", "--runtime-config-path", policy}, w.args...), w.image, id)
		stdout, stderr, code, err := d.Ctr(ctx, append(args, w.cmd...)...)
		if err != nil {
			p.Fatalf("%v", err)
		}
		dec := lastDecision(p, audit)
		result := strings.TrimSpace(stdout)
		if code != 0 {
			result = lastLine(stderr)
			d.Ctr(ctx, "container", "delete", id)
		}
		route := "-"
		if dec.Action == "run" {
			route = dec.Tier + " → " + dec.Runtime
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", w.name, w.what, dec.Action, route, dec.Rule, result)
	}
	tw.Flush()
	printControls(p, audit, d.ID(workloads[0].name))
	fmt.Printf("\nEvery decision is in the audit log (%s); the last one:\n%s\n", audit, lastLineOf(p, audit))
	fmt.Println("\nstopping containerd and removing everything it started ...")
}

type decision struct {
	Action, Tier, Runtime, Rule, Reason string
}

// printControls prints how the tier's hardening took effect for container id, from the
// audit log.
func printControls(p *harness.Program, audit, id string) {
	f, err := os.Open(audit)
	if err != nil {
		p.Fatalf("%v", err)
	}
	defer f.Close()
	for s := bufio.NewScanner(f); s.Scan(); {
		var rec struct {
			ID       string
			Tier     string
			Controls []struct{ ID, Status, Detail string }
		}
		if json.Unmarshal(s.Bytes(), &rec) != nil || rec.ID != id {
			continue
		}
		fmt.Printf("\nHow tier %s hardened %s before runc saw it (also in the audit log, and in `triage explain`):\n", rec.Tier, id)
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		for _, c := range rec.Controls {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", c.ID, c.Status, c.Detail)
		}
		tw.Flush()
		return
	}
}

func lastDecision(p *harness.Program, audit string) decision {
	var d decision
	if err := json.Unmarshal([]byte(lastLineOf(p, audit)), &d); err != nil {
		p.Fatalf("audit log %s: %v", audit, err)
	}
	return d
}

func lastLineOf(p *harness.Program, path string) string {
	f, err := os.Open(path)
	if err != nil {
		p.Fatalf("%v", err)
	}
	defer f.Close()
	var last string
	for s := bufio.NewScanner(f); s.Scan(); {
		last = s.Text()
	}
	return last
}

// lastLine is the last non-empty line of ctr's stderr, trimmed to the shim's own words.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	l := lines[len(lines)-1]
	if i := strings.Index(l, "triage: "); i >= 0 {
		l = l[i:]
	}
	return strings.TrimSuffix(l, ": exit status 1")
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n    ")
}
