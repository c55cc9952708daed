// Package classifier decides, for one workload, which isolation tier it runs in or whether
// it is denied. It is pure: facts in, decision out. It imports no containerd, ttrpc,
// process, network or logging package, so every path is testable and fuzzable.
package classifier

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/triage-runtime/triage/policy"
)

// Keys of the annotations and labels the classifier reads.
const (
	// TierRequestKey, as an annotation or a container label, asks for a tier. It is a
	// request: it may raise isolation, never lower it.
	TierRequestKey = "triage.io/tier"
	// AnnotationSandboxNamespace is the Kubernetes namespace, set by the CRI plugin.
	AnnotationSandboxNamespace = "io.kubernetes.cri.sandbox-namespace"
	// AnnotationImageName is the image reference, set by the CRI plugin.
	AnnotationImageName = "io.kubernetes.cri.image-name"
	// AnnotationContainerType is "sandbox" or "container", set by the CRI plugin.
	AnnotationContainerType = "io.kubernetes.cri.container-type"
	// CRINamespace is the containerd namespace of the CRI plugin. io.kubernetes.cri.*
	// annotations are believed only for containers the CRI plugin made there (Facts.CRI):
	// elsewhere any client could claim to be, say, kube-system.
	CRINamespace = "k8s.io"
)

// Facts is everything known about one workload.
type Facts struct {
	// ID is the container's id.
	ID string
	// Spec is the OCI spec; nil when config.json is missing or malformed, which denies.
	Spec *specs.Spec
	// UnknownFields are the spec's fields this build does not know (see UnknownFields).
	UnknownFields []string
	// Reach is what the spec's host-touching fields reach on the node; nil judges the
	// spec's text alone (Lexical, with no bundle).
	Reach *Reach
	// CRI: containerd's record of the container carries the CRI plugin's metadata
	// extension, which ctr and nerdctl cannot set. Only then are the CRI plugin's
	// io.kubernetes.cri.* annotations believed.
	CRI bool
	// Namespace is the containerd namespace.
	Namespace string
	// NamespaceLabels are the labels of the containerd namespace.
	NamespaceLabels map[string]string
	// Labels are the containerd container labels.
	Labels map[string]string
	// Image is the image reference from containerd's container record; when empty, the
	// CRI annotation io.kubernetes.cri.image-name is used (for CRI's containers only).
	Image string
	// ImageDigest is the digest containerd's image record of Image holds (its target);
	// "" when unknown.
	ImageDigest string
}

// cri reports whether the CRI plugin made the container, so its annotations are facts.
func (f *Facts) cri() bool {
	return f.CRI && f.Namespace == CRINamespace
}

// reach returns the facts' Reach, judged from the spec's text when none was resolved.
func (f *Facts) reach() *Reach {
	if f.Reach == nil {
		f.Reach = Lexical(f.Spec, "")
	}
	return f.Reach
}

// image is the image the container runs: containerd's record, else CRI's annotation.
func (f *Facts) image() string {
	if f.Image == "" && f.cri() {
		return f.annotations()[AnnotationImageName]
	}
	return f.Image
}

// annotations returns the spec's annotations, never nil.
func (f *Facts) annotations() map[string]string {
	if f.Spec == nil || f.Spec.Annotations == nil {
		return map[string]string{}
	}
	return f.Spec.Annotations
}

// subject reduces the facts to what rules select on.
func (f *Facts) subject(findings []Finding) *policy.Subject {
	ann := f.annotations()
	s := &policy.Subject{
		Namespace:       f.Namespace,
		Image:           f.image(),
		ImageDigest:     f.ImageDigest,
		Labels:          nonNil(f.Labels),
		Annotations:     ann,
		NamespaceLabels: nonNil(f.NamespaceLabels),
		Findings:        make([]string, 0, len(findings)),
	}
	if f.cri() {
		s.K8sNamespace = ann[AnnotationSandboxNamespace]
		s.ContainerType = ann[AnnotationContainerType]
	}
	for _, fd := range findings {
		s.Findings = append(s.Findings, fd.ID)
		if fd.ID == policy.FindingRunAsRoot {
			s.RunAsRoot = true
		}
	}
	return s
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
