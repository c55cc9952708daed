// Package k8s turns Kubernetes manifests into the facts Triage decides on: for each
// container of a pod (or of a workload's pod template), the OCI spec the containerd CRI
// plugin would hand the shim, and what that spec cannot know. It is pure: bytes in, facts
// out; it reads no file and asks no API server.
package k8s

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// ErrMalformed matches (errors.Is) every error of Decode about a document's content.
var ErrMalformed = errors.New("malformed manifest")

// DocumentError is a document Decode could not read: its 1-based position in the input,
// its kind when known, and why.
type DocumentError struct {
	Document int
	Kind     string
	Err      error
}

func (e *DocumentError) Error() string {
	where := fmt.Sprintf("document %d", e.Document)
	if e.Kind != "" {
		where += " (" + e.Kind + ")"
	}
	return fmt.Sprintf("%s: %v", where, e.Err)
}

// Unwrap returns ErrMalformed and the cause, so both match errors.Is.
func (e *DocumentError) Unwrap() []error { return []error{ErrMalformed, e.Err} }

// Workload names what a pod comes from: the object's kind, name and namespace.
type Workload struct {
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
}

func (w Workload) String() string {
	return fmt.Sprintf("%s %s/%s", w.Kind, w.Namespace, w.Name)
}

// Pod is one pod of a manifest: a Pod, or the pod template of a workload.
type Pod struct {
	Workload Workload
	// Document is the 1-based position of the manifest document in the input.
	Document int
	// UID is the Pod's metadata.uid; "" for a pod template, whose pods do not exist yet.
	UID string
	// Annotations are the pod's (the template's for a workload).
	Annotations map[string]string
	Spec        corev1.PodSpec
}

// WorkloadKinds are the kinds Decode takes a pod from, as "apiVersion kind".
var WorkloadKinds = []string{
	"v1 Pod", "apps/v1 Deployment", "apps/v1 StatefulSet", "apps/v1 DaemonSet",
	"apps/v1 ReplicaSet", "batch/v1 Job", "batch/v1 CronJob", "v1 List",
}

// IsManifest reports whether data is a Kubernetes manifest: its first document that is
// not empty names an apiVersion and a kind. An OCI spec names neither.
func IsManifest(data []byte) bool {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if err != nil {
			return false
		}
		var tm metav1.TypeMeta
		if yaml.Unmarshal(doc, &tm) != nil {
			return false
		}
		if tm.APIVersion != "" || tm.Kind != "" {
			return tm.APIVersion != "" && tm.Kind != ""
		}
		if !blank(doc) {
			return false
		}
	}
}

// blank reports a document of nothing but whitespace and comments.
func blank(doc []byte) bool {
	for line := range strings.Lines(string(doc)) {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

// Decode reads the pods of a manifest of YAML or JSON documents separated by "---":
// Pods, and the pod templates of Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs
// and CronJobs (also as the items of a List). Decoding is strict: an unknown field is an
// error naming its document and the field. Objects of other kinds hold no pod: they are
// returned in skipped ("document 2: v1 Service web"), not decided.
func Decode(data []byte) (pods []Pod, skipped []string, err error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, &DocumentError{Document: n, Err: err}
		}
		if blank(doc) {
			n--
			continue
		}
		p, s, err := decodeObject(doc, n)
		if err != nil {
			return nil, nil, err
		}
		pods, skipped = append(pods, p...), append(skipped, s...)
	}
	if len(pods) == 0 {
		return nil, skipped, fmt.Errorf("%w: no pod in the manifest: give a Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or CronJob", ErrMalformed)
	}
	return pods, skipped, nil
}

// list is a v1 List, as `kubectl get pods -o yaml` prints several objects.
type list struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []map[string]any `json:"items"`
}

func decodeObject(doc []byte, n int) (pods []Pod, skipped []string, err error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, nil, &DocumentError{Document: n, Err: err}
	}
	if tm.APIVersion == "" || tm.Kind == "" {
		return nil, nil, &DocumentError{Document: n, Err: errors.New("no apiVersion and kind: every document must name both")}
	}
	kind := tm.APIVersion + " " + tm.Kind
	bad := func(err error) error { return &DocumentError{Document: n, Kind: kind, Err: err} }
	var (
		meta metav1.ObjectMeta
		tmpl *corev1.PodTemplateSpec
	)
	switch kind {
	case "v1 Pod":
		var o corev1.Pod
		if err := yaml.UnmarshalStrict(doc, &o); err != nil {
			return nil, nil, bad(err)
		}
		p := pod(n, tm.Kind, o.ObjectMeta, corev1.PodTemplateSpec{ObjectMeta: o.ObjectMeta, Spec: o.Spec})
		p.UID = string(o.UID)
		return []Pod{p}, nil, nil
	case "v1 List":
		var l list
		if err := yaml.UnmarshalStrict(doc, &l); err != nil {
			return nil, nil, bad(err)
		}
		for i, item := range l.Items {
			b, err := yaml.Marshal(item)
			if err != nil {
				return nil, nil, bad(fmt.Errorf("item %d: %w", i, err))
			}
			p, s, err := decodeObject(b, n)
			if err != nil {
				return nil, nil, bad(fmt.Errorf("item %d: %w", i, err))
			}
			pods, skipped = append(pods, p...), append(skipped, s...)
		}
		return pods, skipped, nil
	case "apps/v1 Deployment":
		var o appsv1.Deployment
		err, tmpl = yaml.UnmarshalStrict(doc, &o), &o.Spec.Template
		meta = o.ObjectMeta
	case "apps/v1 StatefulSet":
		var o appsv1.StatefulSet
		err, tmpl = yaml.UnmarshalStrict(doc, &o), &o.Spec.Template
		meta = o.ObjectMeta
	case "apps/v1 DaemonSet":
		var o appsv1.DaemonSet
		err, tmpl = yaml.UnmarshalStrict(doc, &o), &o.Spec.Template
		meta = o.ObjectMeta
	case "apps/v1 ReplicaSet":
		var o appsv1.ReplicaSet
		err, tmpl = yaml.UnmarshalStrict(doc, &o), &o.Spec.Template
		meta = o.ObjectMeta
	case "batch/v1 Job":
		var o batchv1.Job
		err, tmpl = yaml.UnmarshalStrict(doc, &o), &o.Spec.Template
		meta = o.ObjectMeta
	case "batch/v1 CronJob":
		var o batchv1.CronJob
		err, tmpl = yaml.UnmarshalStrict(doc, &o), &o.Spec.JobTemplate.Spec.Template
		meta = o.ObjectMeta
	default:
		if holdsPods(tm.Kind) {
			return nil, nil, bad(fmt.Errorf("apiVersion %q of kind %s is not supported: use %s", tm.APIVersion, tm.Kind, strings.Join(WorkloadKinds, ", ")))
		}
		var m struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		_ = yaml.Unmarshal(doc, &m)
		return nil, []string{fmt.Sprintf("document %d: %s %s (holds no pod)", n, kind, m.Metadata.Name)}, nil
	}
	if err != nil {
		return nil, nil, bad(err)
	}
	return []Pod{pod(n, tm.Kind, meta, *tmpl)}, nil, nil
}

// holdsPods reports a kind Decode knows in another apiVersion: skipping it would pass a
// workload unjudged.
func holdsPods(kind string) bool {
	for _, k := range WorkloadKinds {
		if strings.HasSuffix(k, " "+kind) {
			return true
		}
	}
	return false
}

func pod(n int, kind string, meta metav1.ObjectMeta, tmpl corev1.PodTemplateSpec) Pod {
	ns := meta.Namespace
	if ns == "" {
		ns = "default"
	}
	return Pod{
		Workload:    Workload{Kind: kind, Name: meta.Name, Namespace: ns},
		Document:    n,
		Annotations: tmpl.Annotations,
		Spec:        tmpl.Spec,
	}
}
