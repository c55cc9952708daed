package classifier

import (
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/triage-runtime/triage/policy"
)

// benchRules returns n rules none of which matches the benchmark workload, so
// Classify walks all of them: the worst case. Every tenth rule is a CEL expression alone,
// so it is evaluated every time; the others mix globs, label selectors and findings.
func benchRules(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "[[rule]]\nname = \"rule-%d\"\ntier = \"sandboxed\"\nreason = \"benchmark rule %d\"\n[rule.match]\n", i, i)
		switch i % 10 {
		case 0:
			fmt.Fprintf(&b, "expression = 'facts.image.startsWith(\"registry-%d.example/\") || (\"team\" in facts.labels && facts.labels[\"team\"] == \"t%d\")'\n", i, i)
		case 1, 2, 3:
			fmt.Fprintf(&b, "namespaces = [\"team-%d-*\", \"proj-%d\"]\n", i, i)
		case 4, 5, 6:
			fmt.Fprintf(&b, "images = [\"registry-%d.example/*\", \"sha256:%064d\"]\n", i, i)
		case 7, 8:
			fmt.Fprintf(&b, "labels = { team = \"t%d-*\", env = \"prod\" }\n", i)
		default:
			fmt.Fprintf(&b, "containerd_namespaces = [\"k8s.io\"]\nfindings = [\"host-device\", \"unsafe-sysctl\"]\n")
		}
	}
	return b.String()
}

func BenchmarkClassify(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) { benchClassify(b, n) })
		// The shim classifies in triage-shimd (or a one-call process), with the
		// garbage collector off below a memory limit (shim.Main): measured the same way.
		b.Run(fmt.Sprintf("rules=%d/as-in-shim", n), func(b *testing.B) {
			defer debug.SetGCPercent(debug.SetGCPercent(-1))
			defer debug.SetMemoryLimit(debug.SetMemoryLimit(shimMemoryLimit))
			benchClassify(b, n)
		})
	}
}

// shimMemoryLimit mirrors the shim's (shim.memoryLimit).
const shimMemoryLimit = 32 << 20

func benchClassify(b *testing.B, n int) {
	p := policyWith(b, policy.DowngradeDeny, benchRules(n))
	// A root workload with a writable rootfs and a dangerous capability: several findings,
	// CRI annotations, labels and an image.
	f := facts(image("docker.io/library/nginx:1.25"), label("team", "payments"), label("env", "dev"),
		annotation(AnnotationSandboxNamespace, "tenant-a"), annotation(AnnotationContainerType, "container"),
		func(f *Facts) {
			f.Namespace = CRINamespace
			f.Spec.Process.User.UID = 0
			f.Spec.Root.Readonly = false
			f.Spec.Process.Capabilities.Bounding = append(f.Spec.Process.Capabilities.Bounding, "CAP_NET_RAW")
		})
	d := Classify(p, f)
	if d.Rule != RuleDefault {
		b.Fatalf("benchmark workload matched rule %q (%s); it must walk every rule", d.Rule, d.Reason)
	}
	if len(d.Findings) < 2 {
		b.Fatalf("benchmark workload has findings %v; it must have several", d.Findings)
	}
	timed(b, func() { Classify(p, f) })
}

// BenchmarkLoadPolicy measures parsing, validating and compiling a 100-rule policy (ten
// CEL expressions). The CEL environment is built once per process and is not included.
func BenchmarkLoadPolicy(b *testing.B) {
	data := []byte(fmt.Sprintf(tiers, policy.DowngradeDeny) + benchRules(100))
	timed(b, func() {
		if _, err := policy.Parse("bench.toml", data); err != nil {
			b.Fatal(err)
		}
	})
}

// timed runs fn b.N times, timing each call, and reports the median and 99th percentile.
func timed(b *testing.B, fn func()) {
	var samples []time.Duration
	for b.Loop() {
		start := time.Now()
		fn()
		samples = append(samples, time.Since(start))
	}
	slices.Sort(samples)
	pct := func(q float64) float64 { return float64(samples[int(q*float64(len(samples)-1))].Nanoseconds()) }
	b.ReportMetric(pct(0.50), "p50-ns")
	b.ReportMetric(pct(0.99), "p99-ns")
}
