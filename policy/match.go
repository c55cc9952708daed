package policy

import (
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

// Matches reports whether the rule selects s. A CEL evaluation error is returned with
// false; callers must fail closed on it.
func (r *Rule) Matches(s *Subject) (bool, error) {
	m := &r.Match
	ok := (len(m.Namespaces) == 0 || s.K8sNamespace != "" && anyGlob(m.Namespaces, s.K8sNamespace)) &&
		(len(m.ContainerdNamespaces) == 0 || anyGlob(m.ContainerdNamespaces, s.Namespace)) &&
		(len(m.Images) == 0 || s.Image != "" && anyImage(m.Images, s.Image)) &&
		selects(m.Labels, s.Labels) &&
		selects(m.Annotations, s.Annotations) &&
		selects(m.NamespaceLabels, s.NamespaceLabels) &&
		(len(m.Findings) == 0 || slices.ContainsFunc(m.Findings, func(id string) bool { return slices.Contains(s.Findings, id) }))
	if !ok || m.Expression == "" {
		return ok, nil
	}
	return m.program.eval(s)
}

func anyGlob(patterns []string, s string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return glob(p, s) })
}

// anyImage matches image references; a "sha256:" pattern matches the reference's digest.
func anyImage(patterns []string, image string) bool {
	digest := image
	if i := strings.LastIndexByte(image, '@'); i >= 0 {
		digest = image[i+1:]
	}
	return slices.ContainsFunc(patterns, func(p string) bool {
		if strings.HasPrefix(p, "sha256:") {
			return glob(p, digest)
		}
		return glob(p, image)
	})
}

// selects reports whether every selector key is present in values with a matching value.
func selects(selectors, values map[string]string) bool {
	for k, pattern := range selectors {
		v, ok := values[k]
		if !ok || !glob(pattern, v) {
			return false
		}
	}
	return true
}

// glob matches with path.Match; patterns were checked by Validate, so a malformed one
// (only possible in a Policy built without it) simply does not match.
func glob(pattern, s string) bool {
	ok, err := path.Match(pattern, s)
	return ok && err == nil
}
