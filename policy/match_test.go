package policy

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"testing"
)

// TestGlobAgreesWithPathMatch: the fast paths of compiled globs give path.Match's answer.
func TestGlobAgreesWithPathMatch(t *testing.T) {
	patterns := []string{"", "*", "tenant-*", "tenant-a", "docker.io/library/*", "a*b", "t?nant", "[a-c]*", `x\*`, "sha256:ab*", "[", "k8s.io"}
	inputs := []string{"", "tenant-", "tenant-a", "tenant-a/b", "tenant", "docker.io/library/nginx:1", "docker.io/library/a/b", "ab", "axb", "b1", "x*", "xy", "sha256:abcd", "k8s.io", "k8s_io"}
	for _, p := range patterns {
		g := compileGlob(p)
		for _, s := range inputs {
			want, err := path.Match(p, s)
			want = want && err == nil
			if got := g.match(s); got != want {
				t.Errorf("glob %q on %q = %v, path.Match says %v", p, s, got, want)
			}
		}
	}
}

func TestMatchesNeedsParse(t *testing.T) {
	r := &Rule{Name: "r", Tier: "t", Reason: "x"}
	if ok, err := r.Matches(&Subject{}); ok || !errors.Is(err, errNotCompiled) {
		t.Errorf("Matches on a rule not built by Parse = %v, %v; want false, errNotCompiled", ok, err)
	}
}

func TestRequireDigest(t *testing.T) {
	p, err := Parse("p.toml", []byte(`default_tier = "a"
[tier.a]
strength = 1
runtime = "io.containerd.runc.v2"
[[rule]]
name = "pinned"
tier = "a"
reason = "pinned"
  [rule.match]
  images = ["registry.internal/*"]
  require_digest = true
`))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, image, recorded string
		want                  bool
	}{
		{"pinned, and the record holds that digest", "registry.internal/app@sha256:aa", "sha256:aa", true},
		{"a local tag claiming the digest", "registry.internal/app@sha256:aa", "sha256:bb", false},
		{"a tag", "registry.internal/app:1", "sha256:aa", false},
		{"record unknown", "registry.internal/app@sha256:aa", "", false},
	}
	for _, tc := range cases {
		got, err := p.Rules[0].Matches(&Subject{Image: tc.image, ImageDigest: tc.recorded})
		if err != nil || got != tc.want {
			t.Errorf("%s: match %t (%v), want %t", tc.name, got, err, tc.want)
		}
	}
}

func TestUsesImageDigest(t *testing.T) {
	rule := func(match string) string {
		return "default_tier = \"a\"\n[tier.a]\nstrength = 1\nruntime = \"io.containerd.runc.v2\"\n[[rule]]\nname = \"r\"\ntier = \"a\"\nreason = \"r\"\n  [rule.match]\n  " + match + "\n"
	}
	for match, want := range map[string]bool{
		`images = ["registry.internal/*"]`:                  false,
		`images = ["sha256:ab*"]`:                           true,
		`require_digest = true`:                             true,
		`expression = 'facts.image_digest.startsWith("x")'`: true,
		`expression = 'facts.image.startsWith("x")'`:        false,
	} {
		p, err := Parse("p.toml", []byte(rule(match)))
		if err != nil {
			t.Fatalf("%s: %v", match, err)
		}
		if got := p.UsesImageDigest(); got != want {
			t.Errorf("%s: UsesImageDigest = %t, want %t", match, got, want)
		}
	}
}

// The cost limit holds whether CEL bounds an expression at compile time (evaluated without
// run-time tracking) or not: a workload whose labels make an expression too costly is an
// evaluation error, which denies it, never a slow start.
func TestExpressionCostLimit(t *testing.T) {
	labels := map[string]string{}
	for i := range 200 {
		labels[fmt.Sprintf("l%d", i)] = "v"
	}
	for _, tc := range []struct {
		expr      string
		tracked   bool // not bounded at compile time
		tooCostly bool
	}{
		{`facts.image.startsWith("registry.internal/") || ("team" in facts.labels && facts.labels["team"] == "a")`, false, false},
		{`facts.labels.exists(k, k == "l7")`, true, false},
		{`facts.labels.all(k, facts.labels.all(j, k.size() + j.size() > 0))`, true, true},
	} {
		expr, err := compileExpression(tc.expr)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		env, _ := celEnv()
		ast, _ := env.Compile(tc.expr)
		if got := !boundedCost(env, ast); got != tc.tracked {
			t.Errorf("%s: tracked at run time = %t, want %t", tc.expr, got, tc.tracked)
		}
		_, err = expr.eval(&Subject{Image: "docker.io/library/busybox", Labels: labels})
		if gotErr := err != nil && strings.Contains(err.Error(), "cost limit"); gotErr != tc.tooCostly || (err != nil && !gotErr) {
			t.Errorf("%s: eval error %v, want a cost-limit error: %t", tc.expr, err, tc.tooCostly)
		}
	}
}
