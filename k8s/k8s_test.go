package k8s

import (
	"errors"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/triage-runtime/triage/classifier"
	"github.com/triage-runtime/triage/hardening"
	"github.com/triage-runtime/triage/policy"
)

// podYAML wraps a pod spec's YAML (indented by 2) into a Pod manifest.
func podYAML(spec string) string {
	return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: ns\n  uid: u1\nspec:\n" + spec
}

// only decodes a one-pod manifest and returns its first container (after init ones).
func only(t *testing.T, manifest string, o Options) Container {
	t.Helper()
	pods, _, err := Decode([]byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	cs, err := pods[0].Containers(o)
	if err != nil {
		t.Fatal(err)
	}
	return cs[len(cs)-1]
}

func findingIDs(f classifier.Facts) []string {
	var ids []string
	for _, fd := range classifier.Findings(f) {
		ids = append(ids, fd.ID)
	}
	return ids
}

func TestContainerSpec(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spec  string
		check func(t *testing.T, s *specs.Spec, c Container)
	}{
		{
			name: "defaults: containerd's capabilities, masked paths, new namespaces, CRI annotations, root assumed",
			spec: "  containers:\n  - name: app\n    image: reg/app:1\n",
			check: func(t *testing.T, s *specs.Spec, c Container) {
				if got := s.Process.Capabilities.Bounding; !slices.Equal(got, defaultCapabilities()) || len(got) != 14 {
					t.Errorf("capabilities %v", got)
				}
				if s.Process.User.UID != 0 || s.Process.NoNewPrivileges || s.Root.Readonly || s.Linux.Seccomp != nil {
					t.Errorf("process %+v root %+v", s.Process.User, s.Root)
				}
				if !slices.Equal(s.Linux.MaskedPaths, hardening.DefaultMaskedPaths) {
					t.Errorf("masked %v", s.Linux.MaskedPaths)
				}
				if len(s.Linux.Namespaces) != 6 {
					t.Errorf("namespaces %v", s.Linux.Namespaces)
				}
				for k, v := range map[string]string{
					classifier.AnnotationSandboxNamespace: "ns", classifier.AnnotationContainerType: "container",
					classifier.AnnotationImageName: "reg/app:1", "io.kubernetes.cri.sandbox-uid": "u1",
				} {
					if s.Annotations[k] != v {
						t.Errorf("annotation %s = %q, want %q", k, s.Annotations[k], v)
					}
				}
				if !c.Facts.CRI || c.Facts.Namespace != "k8s.io" || c.Facts.Image != "reg/app:1" {
					t.Errorf("facts %+v", c.Facts)
				}
				if !slices.ContainsFunc(c.Assumptions, func(a string) bool { return strings.Contains(a, "judged as root") }) {
					t.Errorf("no runAsUser assumption in %q", c.Assumptions)
				}
				if ids := findingIDs(c.Facts); slices.Contains(ids, policy.FindingSensitiveHostMount) || slices.Contains(ids, policy.FindingHostNamespace) {
					t.Errorf("CRI's own mounts judged as findings: %v", ids)
				}
			},
		},
		{
			name: "privileged: every capability, no seccomp, nothing masked, all devices",
			spec: "  containers:\n  - name: app\n    image: i\n    securityContext: {privileged: true, allowPrivilegeEscalation: false, seccompProfile: {type: RuntimeDefault}}\n",
			check: func(t *testing.T, s *specs.Spec, c Container) {
				if len(s.Process.Capabilities.Bounding) != len(policy.CapabilityNames()) || s.Linux.Seccomp != nil ||
					s.Linux.MaskedPaths != nil || s.Process.NoNewPrivileges || s.Linux.Resources == nil {
					t.Errorf("spec %+v %+v", s.Process, s.Linux)
				}
				if ids := findingIDs(c.Facts); !slices.Contains(ids, policy.FindingPrivileged) || !slices.Contains(ids, policy.FindingHostDevice) {
					t.Errorf("findings %v", ids)
				}
			},
		},
		{
			name: "capabilities add and drop",
			spec: "  containers:\n  - name: app\n    image: i\n    securityContext: {capabilities: {add: [NET_ADMIN, cap_sys_time], drop: [NET_RAW, KILL]}}\n",
			check: func(t *testing.T, s *specs.Spec, _ Container) {
				got := s.Process.Capabilities.Effective
				if !slices.Contains(got, "CAP_NET_ADMIN") || !slices.Contains(got, "CAP_SYS_TIME") || slices.Contains(got, "CAP_NET_RAW") || slices.Contains(got, "CAP_KILL") || len(got) != 14 {
					t.Errorf("capabilities %v", got)
				}
			},
		},
		{
			name: "drop ALL then add one",
			spec: "  containers:\n  - name: app\n    image: i\n    securityContext: {capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}}\n",
			check: func(t *testing.T, s *specs.Spec, _ Container) {
				if got := s.Process.Capabilities.Permitted; !slices.Equal(got, []string{"CAP_NET_BIND_SERVICE"}) {
					t.Errorf("capabilities %v", got)
				}
			},
		},
		{
			name: "adding SYS_ADMIN allows escalation whatever allowPrivilegeEscalation says",
			spec: "  containers:\n  - name: app\n    image: i\n    securityContext: {allowPrivilegeEscalation: false, capabilities: {add: [SYS_ADMIN]}}\n",
			check: func(t *testing.T, s *specs.Spec, _ Container) {
				if s.Process.NoNewPrivileges {
					t.Error("noNewPrivileges set")
				}
			},
		},
		{
			name: "runAsUser, runAsGroup, readOnlyRootFilesystem, allowPrivilegeEscalation false; container overrides pod",
			spec: "  securityContext: {runAsUser: 5, runAsGroup: 6, supplementalGroups: [7]}\n  containers:\n  - name: app\n    image: i\n    securityContext: {runAsUser: 1000, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false}\n",
			check: func(t *testing.T, s *specs.Spec, c Container) {
				if u := s.Process.User; u.UID != 1000 || u.GID != 6 || !slices.Equal(u.AdditionalGids, []uint32{7}) {
					t.Errorf("user %+v", u)
				}
				if !s.Root.Readonly || !s.Process.NoNewPrivileges {
					t.Errorf("readonly %v nnp %v", s.Root.Readonly, s.Process.NoNewPrivileges)
				}
				if slices.ContainsFunc(c.Assumptions, func(a string) bool { return strings.Contains(a, "runAsUser") }) {
					t.Errorf("runAsUser assumed though set: %q", c.Assumptions)
				}
			},
		},
		{
			name: "runAsNonRoot without runAsUser: a non-root uid, assumed",
			spec: "  securityContext: {runAsNonRoot: true}\n  containers:\n  - name: app\n    image: i\n",
			check: func(t *testing.T, s *specs.Spec, c Container) {
				if s.Process.User.UID == 0 || !slices.ContainsFunc(c.Assumptions, func(a string) bool { return strings.Contains(a, "runAsNonRoot") }) {
					t.Errorf("uid %d, assumptions %q", s.Process.User.UID, c.Assumptions)
				}
			},
		},
		{
			name: "procMount Unmasked",
			spec: "  containers:\n  - name: app\n    image: i\n    securityContext: {procMount: Unmasked}\n",
			check: func(t *testing.T, s *specs.Spec, _ Container) {
				if s.Linux.MaskedPaths != nil || s.Linux.ReadonlyPaths != nil {
					t.Errorf("masked %v readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
				}
			},
		},
		{
			name: "seccomp RuntimeDefault from the pod",
			spec: "  securityContext: {seccompProfile: {type: RuntimeDefault}}\n  containers:\n  - name: app\n    image: i\n",
			check: func(t *testing.T, s *specs.Spec, _ Container) {
				if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != hardening.DefaultProfile(s).DefaultAction {
					t.Errorf("seccomp %v", s.Linux.Seccomp)
				}
			},
		},
		{
			name: "seccomp Unconfined in the container overrides the pod's RuntimeDefault",
			spec: "  securityContext: {seccompProfile: {type: RuntimeDefault}}\n  containers:\n  - name: app\n    image: i\n    securityContext: {seccompProfile: {type: Unconfined}}\n",
			check: func(t *testing.T, s *specs.Spec, _ Container) {
				if s.Linux.Seccomp != nil {
					t.Error("seccomp set")
				}
			},
		},
		{
			name: "seccomp Localhost: named as a file on the node",
			spec: "  containers:\n  - name: app\n    image: i\n    securityContext: {seccompProfile: {type: Localhost, localhostProfile: profiles/audit.json}}\n",
			check: func(t *testing.T, s *specs.Spec, c Container) {
				if s.Linux.Seccomp == nil || !slices.ContainsFunc(c.Assumptions, func(a string) bool { return strings.Contains(a, "/var/lib/kubelet/seccomp/profiles/audit.json") }) {
					t.Errorf("seccomp %v assumptions %q", s.Linux.Seccomp != nil, c.Assumptions)
				}
			},
		},
		{
			name: "AppArmor RuntimeDefault by default",
			spec: "  containers:\n  - name: app\n    image: i\n",
			check: func(t *testing.T, s *specs.Spec, _ Container) {
				if s.Process.ApparmorProfile != AppArmorDefaultProfile {
					t.Errorf("apparmor %q", s.Process.ApparmorProfile)
				}
			},
		},
		{
			name: "AppArmor Localhost field",
			spec: "  containers:\n  - name: app\n    image: i\n    securityContext: {appArmorProfile: {type: Localhost, localhostProfile: my-prof}}\n",
			check: func(t *testing.T, s *specs.Spec, _ Container) {
				if s.Process.ApparmorProfile != "my-prof" {
					t.Errorf("apparmor %q", s.Process.ApparmorProfile)
				}
			},
		},
		{
			name: "AppArmor Unconfined from the pod: no profile",
			spec: "  securityContext: {appArmorProfile: {type: Unconfined}}\n  containers:\n  - name: app\n    image: i\n",
			check: func(t *testing.T, s *specs.Spec, _ Container) {
				if s.Process.ApparmorProfile != "" {
					t.Errorf("apparmor %q", s.Process.ApparmorProfile)
				}
			},
		},
		{
			name: "sysctls",
			spec: "  securityContext: {sysctls: [{name: kernel.msgmax, value: \"65536\"}]}\n  containers:\n  - name: app\n    image: i\n",
			check: func(t *testing.T, s *specs.Spec, c Container) {
				if s.Linux.Sysctl["kernel.msgmax"] != "65536" || !slices.Contains(findingIDs(c.Facts), policy.FindingUnsafeSysctl) {
					t.Errorf("sysctl %v", s.Linux.Sysctl)
				}
			},
		},
		{
			name: "hostNetwork, hostPID, hostIPC: no such namespaces (UTS goes with the network)",
			spec: "  hostNetwork: true\n  hostPID: true\n  hostIPC: true\n  containers:\n  - name: app\n    image: i\n",
			check: func(t *testing.T, s *specs.Spec, c Container) {
				for _, ns := range s.Linux.Namespaces {
					if ns.Type != specs.MountNamespace && ns.Type != specs.CgroupNamespace {
						t.Errorf("namespace %s", ns.Type)
					}
				}
				if !slices.Contains(findingIDs(c.Facts), policy.FindingHostNamespace) {
					t.Error("no host-namespace finding")
				}
			},
		},
		{
			name: "hostPath: a bind mount of the host path, read-only; a configMap: the kubelet's folder, not a finding",
			spec: "  containers:\n  - name: app\n    image: i\n    volumeMounts: [{name: sock, mountPath: /s, readOnly: true}, {name: cfg, mountPath: /cfg}]\n  volumes:\n  - {name: sock, hostPath: {path: /run/containerd/containerd.sock}}\n  - {name: cfg, configMap: {name: c}}\n",
			check: func(t *testing.T, s *specs.Spec, c Container) {
				i := slices.IndexFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == "/s" })
				if i < 0 || s.Mounts[i].Source != "/run/containerd/containerd.sock" || !slices.Contains(s.Mounts[i].Options, "ro") || !slices.Contains(s.Mounts[i].Options, "rbind") {
					t.Fatalf("mounts %+v", s.Mounts)
				}
				j := slices.IndexFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == "/cfg" })
				if want := "/var/lib/kubelet/pods/u1/volumes/kubernetes.io~configmap/cfg"; s.Mounts[j].Source != want {
					t.Errorf("configMap source %q, want %q", s.Mounts[j].Source, want)
				}
				ev := classifier.SensitiveMounts(s, c.Facts.Reach)
				if len(ev) != 1 || !strings.Contains(ev[0], "containerd.sock") {
					t.Errorf("sensitive mounts %q", ev)
				}
			},
		},
		{
			name: "triage.io annotations of the pod pass through, others do not",
			spec: "  containers:\n  - name: app\n    image: i\n",
			check: func(t *testing.T, s *specs.Spec, _ Container) {
				if s.Annotations["triage.io/tier"] != "sandboxed" || s.Annotations["other.io/x"] != "" {
					t.Errorf("annotations %v", s.Annotations)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := podYAML(tc.spec)
			if strings.HasPrefix(tc.name, "triage.io") {
				m = strings.Replace(m, "  uid: u1\n", "  uid: u1\n  annotations: {triage.io/tier: sandboxed, other.io/x: y}\n", 1)
			}
			c := only(t, m, Options{AppArmor: true})
			tc.check(t, c.Facts.Spec, c)
		})
	}
}

func TestSandbox(t *testing.T) {
	pods, _, err := Decode([]byte(podYAML("  hostNetwork: true\n  securityContext: {seccompProfile: {type: RuntimeDefault}}\n  containers:\n  - name: app\n    image: i\n    securityContext: {privileged: true}\n")))
	if err != nil {
		t.Fatal(err)
	}
	sb := pods[0].Sandbox(Options{SandboxImage: "reg/pause:1"})
	s := sb.Facts.Spec
	if sb.Type != TypeSandbox || s.Annotations[classifier.AnnotationContainerType] != "sandbox" || sb.Facts.Image != "reg/pause:1" {
		t.Errorf("sandbox %+v", sb)
	}
	if s.Linux.Seccomp != nil {
		t.Error("a sandbox of a pod with a privileged container has a seccomp profile")
	}
	if s.Process.User.UID != 65535 || !s.Root.Readonly || s.Process.ApparmorProfile != "" {
		t.Errorf("process %+v", s.Process)
	}
	if !slices.Contains(findingIDs(sb.Facts), policy.FindingHostNamespace) || slices.Contains(findingIDs(sb.Facts), policy.FindingPrivileged) {
		t.Errorf("findings %v", findingIDs(sb.Facts))
	}
}

func TestDecode(t *testing.T) {
	tmpl := "    metadata: {labels: {a: b}}\n    spec:\n      initContainers: [{name: i, image: i}]\n      containers: [{name: c, image: c}]\n"
	for _, tc := range []struct {
		name    string
		in      string
		want    []string // "Kind ns/name: containers"
		skipped int
		wantErr error
	}{
		{name: "pod", in: podYAML("  containers: [{name: c, image: c}]\n"), want: []string{"Pod ns/p: c"}},
		{name: "deployment", in: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: x}\nspec:\n  selector: {}\n  template:\n" + tmpl, want: []string{"Deployment x/d: i,c"}},
		{name: "statefulset", in: "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: s}\nspec:\n  template:\n" + tmpl, want: []string{"StatefulSet default/s: i,c"}},
		{name: "daemonset", in: "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: s}\nspec:\n  template:\n" + tmpl, want: []string{"DaemonSet default/s: i,c"}},
		{name: "replicaset", in: "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: s}\nspec:\n  template:\n" + tmpl, want: []string{"ReplicaSet default/s: i,c"}},
		{name: "job", in: "apiVersion: batch/v1\nkind: Job\nmetadata: {name: s}\nspec:\n  template:\n" + tmpl, want: []string{"Job default/s: i,c"}},
		{name: "cronjob", in: "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: s}\nspec:\n  schedule: '* * * * *'\n  jobTemplate:\n    spec:\n      template:\n        metadata: {}\n        spec:\n          containers: [{name: c, image: c}]\n", want: []string{"CronJob default/s: c"}},
		{name: "json", in: `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j"},"spec":{"containers":[{"name":"c","image":"c"}]}}`, want: []string{"Pod default/j: c"}},
		{name: "multi-document with a Service skipped and an empty document", in: podYAML("  containers: [{name: c, image: c}]\n") + "---\n# nothing\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\n" + strings.Replace(podYAML("  containers: [{name: d, image: d}]\n"), "name: p", "name: q", 1), want: []string{"Pod ns/p: c", "Pod ns/q: d"}, skipped: 1},
		{name: "list", in: "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: l}\n  spec: {containers: [{name: c, image: c}]}\n", want: []string{"Pod default/l: c"}},
		{name: "unknown field", in: podYAML("  containers: [{name: c, image: c, privilegd: true}]\n"), wantErr: ErrMalformed},
		{name: "no kind", in: "apiVersion: v1\nmetadata: {name: x}\n", wantErr: ErrMalformed},
		{name: "workload kind of an unsupported apiVersion", in: "apiVersion: apps/v1beta1\nkind: Deployment\nmetadata: {name: x}\n", wantErr: ErrMalformed},
		{name: "no pod at all", in: "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n", wantErr: ErrMalformed},
		{name: "not YAML", in: podYAML("  containers: [{name: c, image: c}\n"), wantErr: ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pods, skipped, err := Decode([]byte(tc.in))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			var got []string
			for _, p := range pods {
				var names []string
				for _, c := range p.all() {
					names = append(names, c.Name)
				}
				got = append(got, p.Workload.String()+": "+strings.Join(names, ","))
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(skipped) != tc.skipped {
				t.Errorf("got %q skipped %q, want %q", got, skipped, tc.want)
			}
		})
	}
}

func TestDecodeErrorNamesDocumentAndField(t *testing.T) {
	_, _, err := Decode([]byte(podYAML("  containers: [{name: c, image: c}]\n") + "---\n" + podYAML("  containers: [{name: c, image: c, privilegd: true}]\n")))
	var de *DocumentError
	if !errors.As(err, &de) || de.Document != 2 || de.Kind != "v1 Pod" || !strings.Contains(err.Error(), `"privilegd"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestContainerErrors(t *testing.T) {
	for _, tc := range []struct{ name, spec string }{
		{"unknown capability", "  containers:\n  - name: app\n    image: i\n    securityContext: {capabilities: {add: [NOT_A_CAP]}}\n"},
		{"volumeMount of no volume", "  containers:\n  - name: app\n    image: i\n    volumeMounts: [{name: missing, mountPath: /m}]\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pods, _, err := Decode([]byte(podYAML(tc.spec)))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := pods[0].Containers(Options{}); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), `container "app"`) {
				t.Errorf("err = %v", err)
			}
		})
	}
}

func TestIsManifest(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want bool
	}{
		{"pod", podYAML("  containers: []\n"), true},
		{"comment first", "# a pod\n---\n" + podYAML("  containers: []\n"), true},
		{"OCI spec", `{"ociVersion":"1.2.0","process":{"args":["sh"]}}`, false},
		{"garbage", "{{", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsManifest([]byte(tc.in)); got != tc.want {
				t.Errorf("IsManifest = %v, want %v", got, tc.want)
			}
		})
	}
}
