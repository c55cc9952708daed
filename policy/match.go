package policy

import (
	"errors"
	"maps"
	"path"
	"slices"
	"strings"
)

// Subject is a workload as rules see it: the facts a rule may select on. In CEL
// expressions it is the variable `facts`, with the field names given by the cel tags.
type Subject struct {
	// Namespace is the containerd namespace.
	Namespace string `cel:"namespace"`
	// K8sNamespace is the Kubernetes namespace; "" outside Kubernetes.
	K8sNamespace string `cel:"k8s_namespace"`
	// Image is the image reference; "" when unknown.
	Image string `cel:"image"`
	// ImageDigest is the digest of the content containerd's image record of Image holds
	// (its target): what runs, whatever the reference says. "" when unknown.
	ImageDigest string `cel:"image_digest"`
	// ContainerType is the CRI container type ("sandbox" or "container"); "" outside CRI.
	ContainerType string `cel:"container_type"`
	// Labels are the containerd container labels.
	Labels map[string]string `cel:"labels"`
	// Annotations are the OCI spec annotations.
	Annotations map[string]string `cel:"annotations"`
	// NamespaceLabels are the labels of the containerd namespace.
	NamespaceLabels map[string]string `cel:"namespace_labels"`
	// Findings are the ids of the workload's findings.
	Findings []string `cel:"findings"`
	// RunAsRoot is true when the process runs as uid 0 without a user namespace remap.
	RunAsRoot bool `cel:"run_as_root"`
}

// errNotCompiled is returned for a rule of a Policy not built by Parse.
var errNotCompiled = errors.New("rule not compiled: build the policy with policy.Load or policy.Parse")

// compiledMatch is a Match prepared at load, so matching does no parsing.
type compiledMatch struct {
	namespaces, containerdNamespaces, images []glob
	labels, annotations, namespaceLabels     []selector
	findings                                 []string
	requireDigest                            bool
	expr                                     *expression // nil without an expression
}

// selector requires key to be present with a value matching the glob.
type selector struct {
	key   string
	value glob
}

// Matches reports whether the rule selects s. An error (a CEL evaluation error, or a rule
// not built by Parse) is returned with false; callers must fail closed on it.
func (r *Rule) Matches(s *Subject) (bool, error) {
	m := r.Match.compiled
	if m == nil {
		return false, errNotCompiled
	}
	ok := (len(m.namespaces) == 0 || s.K8sNamespace != "" && anyGlob(m.namespaces, s.K8sNamespace)) &&
		(len(m.containerdNamespaces) == 0 || anyGlob(m.containerdNamespaces, s.Namespace)) &&
		(len(m.images) == 0 || s.Image != "" && anyImage(m.images, s)) &&
		(!m.requireDigest || Pinned(s.Image, s.ImageDigest)) &&
		selects(m.labels, s.Labels) &&
		selects(m.annotations, s.Annotations) &&
		selects(m.namespaceLabels, s.NamespaceLabels) &&
		(len(m.findings) == 0 || slices.ContainsFunc(m.findings, func(id string) bool { return slices.Contains(s.Findings, id) }))
	if !ok || m.expr == nil {
		return ok, nil
	}
	return m.expr.eval(s)
}

// UsesImageDigest reports whether a rule reads the digest of a workload's image content
// (Subject.ImageDigest): only then does the shim ask containerd for it.
func (p *Policy) UsesImageDigest() bool {
	return slices.ContainsFunc(p.Rules, func(r *Rule) bool {
		m := r.Match.compiled
		return m != nil && (m.requireDigest || m.expr != nil && m.expr.digest ||
			slices.ContainsFunc(m.images, func(g glob) bool { return g.digest }))
	})
}

// compileMatch prepares m; its globs were or will be checked by Validate, and a malformed
// one never matches.
func compileMatch(m *Match) *compiledMatch {
	return &compiledMatch{
		namespaces:           globs(m.Namespaces),
		containerdNamespaces: globs(m.ContainerdNamespaces),
		images:               globs(m.Images),
		labels:               selectors(m.Labels),
		annotations:          selectors(m.Annotations),
		namespaceLabels:      selectors(m.NamespaceLabels),
		requireDigest:        m.RequireDigest,
		findings:             m.Findings,
	}
}

func globs(patterns []string) []glob {
	out := make([]glob, 0, len(patterns))
	for _, p := range patterns {
		out = append(out, compileGlob(p))
	}
	return out
}

func selectors(sel map[string]string) []selector {
	out := make([]selector, 0, len(sel))
	for _, k := range slices.Sorted(maps.Keys(sel)) {
		out = append(out, selector{key: k, value: compileGlob(sel[k])})
	}
	return out
}

func anyGlob(gs []glob, s string) bool {
	return slices.ContainsFunc(gs, func(g glob) bool { return g.match(s) })
}

// anyImage matches image references; a "sha256:" pattern matches the reference's digest.
// anyImage matches the image's reference against the name patterns, and the digest of the
// content its record holds against the "sha256:" patterns: a reference's own "@sha256:…"
// is text anyone who tags an image can write.
func anyImage(gs []glob, s *Subject) bool {
	return slices.ContainsFunc(gs, func(g glob) bool {
		if g.digest {
			return s.ImageDigest != "" && g.match(s.ImageDigest)
		}
		return g.match(s.Image)
	})
}

// Pinned reports an image reference that names its content by digest (NAME@sha256:…),
// when that digest is the one containerd's record of it holds (recorded): a local tag
// (`ctr images tag`) cannot take the name and digest of a registry's image.
func Pinned(image, recorded string) bool {
	i := strings.LastIndexByte(image, '@')
	return i >= 0 && recorded != "" && image[i+1:] == recorded
}

func selects(sel []selector, values map[string]string) bool {
	for _, s := range sel {
		v, ok := values[s.key]
		if !ok || !s.value.match(v) {
			return false
		}
	}
	return true
}

// glob is a path.Match pattern compiled at load. Most patterns are a literal, or a literal
// followed by one '*'; those are matched without path.Match, which also re-checks the
// whole pattern's syntax on every call.
type glob struct {
	pattern string
	kind    globKind
	digest  bool // the pattern starts with "sha256:": it matches an image's digest
}

type globKind int

const (
	globLiteral globKind = iota // no wildcard: equality
	globPrefix                  // literal + "*": a prefix, then no '/'
	globGeneral                 // anything else: path.Match
)

func compileGlob(pattern string) glob {
	g := glob{pattern: pattern, kind: globGeneral, digest: strings.HasPrefix(pattern, "sha256:")}
	switch i := strings.IndexAny(pattern, `*?[\`); {
	case i < 0:
		g.kind = globLiteral
	case i == len(pattern)-1 && pattern[i] == '*':
		g.pattern, g.kind = pattern[:i], globPrefix
	}
	return g
}

func (g glob) match(s string) bool {
	switch g.kind {
	case globLiteral:
		return s == g.pattern
	case globPrefix:
		return strings.HasPrefix(s, g.pattern) && !strings.Contains(s[len(g.pattern):], "/")
	}
	ok, err := path.Match(g.pattern, s)
	return ok && err == nil
}
