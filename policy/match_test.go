package policy

import (
	"errors"
	"path"
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
