package k8s

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"

	"github.com/triage-runtime/triage/classifier"
	"github.com/triage-runtime/triage/hardening"
	"github.com/triage-runtime/triage/policy"
)

// DefaultSandboxImage is containerd's sandbox_image (v2.4), the pause container of a pod.
const DefaultSandboxImage = "registry.k8s.io/pause:3.10.2"

// Placeholders for what only exists once the pod runs on a node.
const (
	PlaceholderPodUID    = "POD_UID"
	PlaceholderSandboxID = "SANDBOX_ID"
)

// Container types, as io.kubernetes.cri.container-type says (init containers are
// "container" to CRI; Type tells them apart).
const (
	TypeSandbox = "sandbox"
	TypeInit    = "init"
	TypeApp     = "container"
)

// ErrUnsupported matches (errors.Is) a pod setting that containerd would refuse: an
// unknown capability, a volumeMount of no volume.
var ErrUnsupported = errors.New("unsupported pod setting")

// Options are the node facts the derivation depends on; the caller reads them.
type Options struct {
	// AppArmor: the node has AppArmor enabled; containerd applies profiles only then.
	AppArmor bool
	// SandboxImage is containerd's sandbox_image; "" is DefaultSandboxImage.
	SandboxImage string
}

// Container is one container of a pod with the facts the shim would be handed for it.
type Container struct {
	Workload Workload `json:"workload"`
	Name     string   `json:"container"`
	// Type is TypeSandbox (the pod's pause container), TypeInit or TypeApp.
	Type  string           `json:"type"`
	Facts classifier.Facts `json:"-"`
	// Assumptions say what the manifest cannot tell and how it was taken.
	Assumptions []string `json:"assumptions"`
}

// Sandbox returns the pod's CRI sandbox, the pause container, which Triage classifies to
// decide the pod's tier: it has the pod-level settings only (host namespaces, the pod's
// securityContext, the pod's annotations).
func (p *Pod) Sandbox(o Options) Container {
	image := o.SandboxImage
	if image == "" {
		image = DefaultSandboxImage
	}
	psc := p.podSecurity()
	c := Container{Workload: p.Workload, Name: "POD", Type: TypeSandbox}
	c.assume("the pod sandbox runs %s (containerd's sandbox_image) as uid 65535, the pause image's USER, unless the pod sets runAsUser", image)
	s := p.baseSpec("POD", image, TypeSandbox)
	s.Process.Args = []string{"/pause"}
	s.Root.Readonly = true
	s.Process.User = specs.User{UID: 65535, GID: 65535}
	if psc.RunAsUser != nil {
		s.Process.User.UID = uint32(*psc.RunAsUser)
	}
	if psc.RunAsGroup != nil {
		s.Process.User.GID = uint32(*psc.RunAsGroup)
	}
	// The kubelet runs the sandbox privileged when a container is; containerd then sets no
	// seccomp profile for it. No AppArmor profile: CRI's sandbox config has none.
	privileged := slices.ContainsFunc(p.all(), func(c corev1.Container) bool {
		return c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged
	})
	s.Linux.Seccomp = p.seccomp(&c, s, psc.SeccompProfile, privileged)
	c.Facts = p.facts(c, s, image)
	return c
}

// Containers returns the pod's init containers and containers, in that order, each with
// the facts the CRI plugin would hand the shim.
func (p *Pod) Containers(o Options) ([]Container, error) {
	var out []Container
	for i, ctr := range p.all() {
		typ := TypeApp
		if i < len(p.Spec.InitContainers) {
			typ = TypeInit
		}
		c, err := p.container(ctr, typ, o)
		if err != nil {
			return nil, fmt.Errorf("document %d: %s, container %q: %w", p.Document, p.Workload, ctr.Name, err)
		}
		out = append(out, c)
	}
	return out, nil
}

func (p *Pod) all() []corev1.Container {
	return slices.Concat(p.Spec.InitContainers, p.Spec.Containers)
}

func (p *Pod) podSecurity() *corev1.PodSecurityContext {
	if p.Spec.SecurityContext == nil {
		return &corev1.PodSecurityContext{}
	}
	return p.Spec.SecurityContext
}

func (p *Pod) uid() string {
	if p.UID == "" {
		return PlaceholderPodUID
	}
	return p.UID
}

func (c *Container) assume(format string, args ...any) {
	c.Assumptions = append(c.Assumptions, fmt.Sprintf(format, args...))
}

// CRI's folders of a sandbox, in containerd's root and state, and the kubelet's of a pod.
const (
	criRoot     = "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/"
	criState    = "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/"
	kubeletPods = "/var/lib/kubelet/pods/"
)

// baseSpec is what containerd's CRI plugin gives every container of the pod: a snapshot
// root, the default mounts and masked paths, the default capabilities, the pod's
// namespaces, sysctls and passed-through annotations.
func (p *Pod) baseSpec(name, image, typ string) *specs.Spec {
	psc := p.podSecurity()
	ann := map[string]string{
		classifier.AnnotationContainerType:    TypeApp,
		classifier.AnnotationSandboxNamespace: p.Workload.Namespace,
		classifier.AnnotationImageName:        image,
		"io.kubernetes.cri.sandbox-id":        PlaceholderSandboxID,
		"io.kubernetes.cri.sandbox-name":      p.Workload.Name,
		"io.kubernetes.cri.sandbox-uid":       p.uid(),
	}
	if typ == TypeSandbox {
		ann[classifier.AnnotationContainerType] = TypeSandbox
	} else {
		ann["io.kubernetes.cri.container-name"] = name
	}
	// The shipped containerd configuration passes pod_annotations = ["triage.io/*"].
	for k, v := range p.Annotations {
		if ok, _ := path.Match("triage.io/*", k); ok {
			ann[k] = v
		}
	}
	var sysctl map[string]string
	for _, s := range psc.Sysctls {
		if sysctl == nil {
			sysctl = map[string]string{}
		}
		sysctl[s.Name] = s.Value
	}
	caps := defaultCapabilities()
	return &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: "rootfs"},
		Process: &specs.Process{
			Cwd:          "/",
			Capabilities: &specs.LinuxCapabilities{Bounding: caps, Effective: slices.Clone(caps), Permitted: slices.Clone(caps)},
		},
		Mounts:      p.defaultMounts(),
		Annotations: ann,
		Linux: &specs.Linux{
			Namespaces:    p.namespaces(),
			MaskedPaths:   slices.Clone(hardening.DefaultMaskedPaths),
			ReadonlyPaths: slices.Clone(hardening.DefaultReadonlyPaths),
			Sysctl:        sysctl,
		},
	}
}

// defaultCapabilities is containerd's default set (oci.defaultUnixCaps), in kernel order.
func defaultCapabilities() []string {
	return slices.DeleteFunc(policy.CapabilityNames(), func(n string) bool {
		return !slices.Contains([]string{
			"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
			"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
			"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
		}, n)
	})
}

// defaultMounts are containerd's default mounts, with /dev/shm the sandbox's (the host's
// with hostIPC).
func (p *Pod) defaultMounts() []specs.Mount {
	shm := criState + PlaceholderSandboxID + "/shm"
	if p.Spec.HostIPC {
		shm = "/dev/shm"
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		{Destination: "/dev/shm", Type: "bind", Source: shm, Options: []string{"rbind", "ro"}},
	}
}

// namespaces are a pod's: containerd leaves out the network and UTS namespaces with
// hostNetwork, the PID namespace with hostPID and the IPC namespace with hostIPC; the
// others are the pod's own (the spec's containers join the sandbox's, which is new).
func (p *Pod) namespaces() []specs.LinuxNamespace {
	var out []specs.LinuxNamespace
	add := func(typ specs.LinuxNamespaceType, host bool) {
		if !host {
			out = append(out, specs.LinuxNamespace{Type: typ})
		}
	}
	add(specs.PIDNamespace, p.Spec.HostPID)
	add(specs.IPCNamespace, p.Spec.HostIPC)
	add(specs.UTSNamespace, p.Spec.HostNetwork)
	add(specs.MountNamespace, false)
	add(specs.NetworkNamespace, p.Spec.HostNetwork)
	add(specs.CgroupNamespace, false)
	return out
}

// facts are the classifier's facts for a spec: a CRI container in containerd namespace
// k8s.io, judged off-node from the spec's text, with the pod's folders as the runtime's
// own.
func (p *Pod) facts(c Container, s *specs.Spec, image string) classifier.Facts {
	reach := classifier.Lexical(s, "")
	reach.RuntimeOwned = []string{criRoot + PlaceholderSandboxID, criState + PlaceholderSandboxID, kubeletPods + p.uid()}
	return classifier.Facts{
		ID: c.Name, Spec: s, Reach: reach, CRI: true, Namespace: classifier.CRINamespace, Image: image,
	}
}

func (p *Pod) container(ctr corev1.Container, typ string, o Options) (Container, error) {
	c := Container{Workload: p.Workload, Name: ctr.Name, Type: typ}
	psc := p.podSecurity()
	sc := ctr.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	privileged := sc.Privileged != nil && *sc.Privileged
	s := p.baseSpec(ctr.Name, ctr.Image, typ)
	s.Process.Args = slices.Concat(ctr.Command, ctr.Args)
	if ctr.WorkingDir != "" {
		s.Process.Cwd = ctr.WorkingDir
	}
	p.user(&c, s, sc)
	caps, err := capabilities(sc, privileged)
	if err != nil {
		return c, err
	}
	s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: slices.Clone(caps), Permitted: slices.Clone(caps)}
	s.Process.NoNewPrivileges = noNewPrivileges(sc, privileged)
	s.Root.Readonly = sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
	if privileged || sc.ProcMount != nil && *sc.ProcMount == corev1.UnmaskedProcMount {
		s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
	}
	if privileged {
		// containerd gives a privileged container every host device and allows them all.
		s.Linux.Resources = &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Type: "a", Access: "rwm"}}}
		s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.CgroupNamespace })
	}
	s.Process.ApparmorProfile = p.apparmor(&c, ctr.Name, sc, privileged, o.AppArmor)
	profile := sc.SeccompProfile
	if profile == nil {
		profile = psc.SeccompProfile
	}
	s.Linux.Seccomp = p.seccomp(&c, s, profile, privileged)
	mounts, err := p.volumeMounts(ctr)
	if err != nil {
		return c, err
	}
	s.Mounts = append(s.Mounts, p.criMounts(ctr.Name)...)
	s.Mounts = append(s.Mounts, mounts...)
	c.assume("the image's registry digest is not known off-node: rules with require_digest = true do not match %s", ctr.Image)
	c.Facts = p.facts(c, s, ctr.Image)
	return c, nil
}

// user sets the process's uid and gids; the image's USER is not in the manifest.
func (p *Pod) user(c *Container, s *specs.Spec, sc *corev1.SecurityContext) {
	psc := p.podSecurity()
	uid, gid, nonRoot := sc.RunAsUser, sc.RunAsGroup, sc.RunAsNonRoot
	if uid == nil {
		uid = psc.RunAsUser
	}
	if gid == nil {
		gid = psc.RunAsGroup
	}
	if nonRoot == nil {
		nonRoot = psc.RunAsNonRoot
	}
	switch {
	case uid != nil:
		s.Process.User.UID = uint32(*uid)
		if *uid == 0 && nonRoot != nil && *nonRoot {
			c.assume("runAsNonRoot with runAsUser 0: the kubelet refuses to start the container")
		}
	case nonRoot != nil && *nonRoot:
		s.Process.User.UID = 65534
		c.assume("runAsUser unset with runAsNonRoot: the kubelet starts the container only if the image's USER is a non-zero uid; judged as uid 65534")
	default:
		c.assume("runAsUser unset: the image's USER is not known off-node; judged as root (uid 0), the unsafe answer")
	}
	if gid != nil {
		s.Process.User.GID = uint32(*gid)
	}
	for _, g := range psc.SupplementalGroups {
		s.Process.User.AdditionalGids = append(s.Process.User.AdditionalGids, uint32(g))
	}
}

// capabilities applies a container's add and drop to containerd's default set, as CRI's
// WithCapabilities does: add ALL first, then drop ALL, then each other name.
func capabilities(sc *corev1.SecurityContext, privileged bool) ([]string, error) {
	if privileged {
		return policy.CapabilityNames(), nil
	}
	held := defaultCapabilities()
	if sc.Capabilities == nil {
		return held, nil
	}
	isAll := func(c corev1.Capability) bool { return strings.EqualFold(string(c), "ALL") }
	if slices.ContainsFunc(sc.Capabilities.Add, isAll) {
		held = policy.CapabilityNames()
	}
	if slices.ContainsFunc(sc.Capabilities.Drop, isAll) {
		held = nil
	}
	canonical := func(c corev1.Capability) (string, error) {
		n, ok := policy.CanonicalCapability(string(c))
		if !ok {
			return "", fmt.Errorf("%w: %q is not a Linux capability: use a name such as NET_ADMIN", ErrUnsupported, c)
		}
		return n, nil
	}
	for _, c := range sc.Capabilities.Add {
		if isAll(c) {
			continue
		}
		n, err := canonical(c)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(held, n) {
			held = append(held, n)
		}
	}
	for _, c := range sc.Capabilities.Drop {
		if isAll(c) {
			continue
		}
		n, err := canonical(c)
		if err != nil {
			return nil, err
		}
		held = slices.DeleteFunc(held, func(h string) bool { return h == n })
	}
	order := policy.CapabilityNames()
	slices.SortFunc(held, func(a, b string) int { return slices.Index(order, a) - slices.Index(order, b) })
	return held, nil
}

// noNewPrivileges is the kubelet's AddNoNewPrivileges: escalation is allowed unless
// allowPrivilegeEscalation is false, and always for a privileged container or one that
// adds CAP_SYS_ADMIN.
func noNewPrivileges(sc *corev1.SecurityContext, privileged bool) bool {
	if privileged || sc.AllowPrivilegeEscalation == nil {
		return false
	}
	if sc.Capabilities != nil && slices.ContainsFunc(sc.Capabilities.Add, func(c corev1.Capability) bool {
		n, _ := policy.CanonicalCapability(string(c))
		return n == "CAP_SYS_ADMIN"
	}) {
		return false
	}
	return !*sc.AllowPrivilegeEscalation
}

// AppArmorDefaultProfile is the profile containerd loads for RuntimeDefault.
const AppArmorDefaultProfile = "cri-containerd.apparmor.d"

// appArmorAnnotation is the deprecated per-container annotation form of appArmorProfile.
const appArmorAnnotation = "container.apparmor.security.beta.kubernetes.io/"

// apparmor is the profile containerd sets (sputil.GenerateApparmorSpecOpts): the
// container's field, else its annotation, else the pod's field; RuntimeDefault when none,
// none for a privileged container's default, none for Unconfined.
func (p *Pod) apparmor(c *Container, name string, sc *corev1.SecurityContext, privileged, enabled bool) string {
	typ, local := corev1.AppArmorProfileTypeRuntimeDefault, ""
	switch a := p.Annotations[appArmorAnnotation+name]; {
	case sc.AppArmorProfile != nil:
		typ, local = sc.AppArmorProfile.Type, ptr(sc.AppArmorProfile.LocalhostProfile)
	case a == "unconfined":
		typ = corev1.AppArmorProfileTypeUnconfined
	case strings.HasPrefix(a, "localhost/"):
		typ, local = corev1.AppArmorProfileTypeLocalhost, strings.TrimPrefix(a, "localhost/")
	case p.Spec.SecurityContext != nil && p.Spec.SecurityContext.AppArmorProfile != nil:
		typ, local = p.Spec.SecurityContext.AppArmorProfile.Type, ptr(p.Spec.SecurityContext.AppArmorProfile.LocalhostProfile)
	}
	if !enabled {
		if typ != corev1.AppArmorProfileTypeUnconfined && (typ != corev1.AppArmorProfileTypeRuntimeDefault || sc.AppArmorProfile != nil) {
			c.assume("AppArmor profile %s asked for, but this node has no AppArmor: containerd refuses to create the container here", typ)
		}
		return ""
	}
	switch typ {
	case corev1.AppArmorProfileTypeUnconfined:
		return ""
	case corev1.AppArmorProfileTypeLocalhost:
		c.assume("AppArmor profile %q must be loaded on the node: containerd refuses the container where it is not", local)
		return local
	}
	if privileged {
		return ""
	}
	return AppArmorDefaultProfile
}

func ptr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// seccomp is the profile containerd sets (sputil.GenerateSeccompSpecOpts): none for a
// privileged container, none when unset (the kubelet's SeccompDefault is off), containerd's
// default for RuntimeDefault. A Localhost profile is a file on the node, not read here.
func (p *Pod) seccomp(c *Container, s *specs.Spec, profile *corev1.SeccompProfile, privileged bool) *specs.LinuxSeccomp {
	switch {
	case privileged:
		return nil
	case profile == nil:
		c.assume("seccompProfile unset: the kubelet's SeccompDefault is taken as off, so the container runs Unconfined")
		return nil
	}
	switch profile.Type {
	case corev1.SeccompProfileTypeRuntimeDefault:
		return hardening.DefaultProfile(s)
	case corev1.SeccompProfileTypeLocalhost:
		c.assume("seccomp profile /var/lib/kubelet/seccomp/%s is a file on the node, not read here: judged as containerd's default profile", ptr(profile.LocalhostProfile))
		return hardening.DefaultProfile(s)
	}
	return nil
}

// criMounts are the files CRI and the kubelet mount into every container of the pod: the
// sandbox's hosts, hostname and resolv.conf, and the termination log.
func (p *Pod) criMounts(name string) []specs.Mount {
	bind := func(dst, src string) specs.Mount {
		return specs.Mount{Destination: dst, Type: "bind", Source: src, Options: []string{"rbind", "rprivate", "rw"}}
	}
	sb := criRoot + PlaceholderSandboxID + "/"
	return []specs.Mount{
		bind("/etc/hosts", sb+"hosts"),
		bind("/etc/hostname", sb+"hostname"),
		bind("/etc/resolv.conf", sb+"resolv.conf"),
		bind("/dev/termination-log", kubeletPods+p.uid()+"/containers/"+name+"/termination-log"),
	}
}

// volumeMounts are the container's volumeMounts as bind mounts: a hostPath volume from its
// host path, any other volume from the kubelet's folder of the pod.
func (p *Pod) volumeMounts(ctr corev1.Container) ([]specs.Mount, error) {
	volumes := map[string]corev1.Volume{}
	for _, v := range p.Spec.Volumes {
		volumes[v.Name] = v
	}
	var out []specs.Mount
	for _, vm := range ctr.VolumeMounts {
		v, ok := volumes[vm.Name]
		if !ok {
			return nil, fmt.Errorf("%w: volumeMount %q at %s names no volume of the pod: add it to spec.volumes (have %s)",
				ErrUnsupported, vm.Name, vm.MountPath, strings.Join(slices.Sorted(maps.Keys(volumes)), ", "))
		}
		src := kubeletPods + p.uid() + "/volumes/" + volumePlugin(v.VolumeSource) + "/" + v.Name
		if v.HostPath != nil {
			src = v.HostPath.Path
		}
		if vm.SubPath != "" {
			src = path.Join(src, vm.SubPath)
		}
		opts := []string{"rbind", "rprivate", "rw"}
		if vm.MountPropagation != nil {
			switch *vm.MountPropagation {
			case corev1.MountPropagationBidirectional:
				opts[1] = "rshared"
			case corev1.MountPropagationHostToContainer:
				opts[1] = "rslave"
			}
		}
		if vm.ReadOnly {
			opts[2] = "ro"
		}
		out = append(out, specs.Mount{Destination: vm.MountPath, Type: "bind", Source: src, Options: opts})
	}
	return out, nil
}

// volumePlugin is the folder the kubelet keeps a volume type in, below the pod's.
func volumePlugin(v corev1.VolumeSource) string {
	switch {
	case v.EmptyDir != nil:
		return "kubernetes.io~empty-dir"
	case v.ConfigMap != nil:
		return "kubernetes.io~configmap"
	case v.Secret != nil:
		return "kubernetes.io~secret"
	case v.Projected != nil:
		return "kubernetes.io~projected"
	case v.DownwardAPI != nil:
		return "kubernetes.io~downward-api"
	case v.NFS != nil:
		return "kubernetes.io~nfs"
	}
	// PersistentVolumeClaims, CSI and ephemeral volumes: mounted by a CSI driver.
	return "kubernetes.io~csi"
}
