package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// Version selects which containerd a daemon runs.
type Version int

const (
	// V16 is containerd 1.6 from Debian, with its own containerd-shim-runc-v2.
	V16 Version = iota + 1
	// V2 is containerd 2.x built by e2e/setup.sh, with its own containerd-shim-runc-v2.
	V2
)

func (v Version) String() string {
	switch v {
	case V16:
		return "containerd-1.6"
	case V2:
		return "containerd-2"
	}
	return fmt.Sprintf("Version(%d)", int(v))
}

// Images every daemon has imported into the default and k8s.io namespaces.
const (
	BusyboxImage = "docker.io/library/busybox:e2e"
	// GVisorMark is a shell command that prints "on gVisor's kernel" when it runs under
	// gVisor, whose kernel reports release 4.4.0 or, in later releases, "4.19.0-gvisor"
	// (this machine's is 6.x). gVisor's dmesg says so too, but the hardened tiers' seccomp
	// profile refuses syslog(2) to a process without CAP_SYSLOG, as it should.
	GVisorMark = `case "$(uname -r)" in 4.4.0|*gvisor*) echo "on gVisor's kernel";; esac`
	PauseImage = "localhost/e2e/pause:1"
)

// Runtime is a CRI runtime handler; ctr users reach the same shim by its Type.
type Runtime struct {
	Name string // handler name, as in crictl runp --runtime NAME
	Type string // runtime_type, e.g. io.containerd.triage.v2
	// Path is runtime_path: an absolute shim binary. Empty: containerd resolves Type on PATH.
	Path string
	// Options are the runtime's options table, e.g. {"TypeUrl": ..., "ConfigPath": ...}.
	Options              map[string]string
	PodAnnotations       []string // annotations CRI passes from the pod to the runtime, e.g. "triage.io/*"
	ContainerAnnotations []string // the same for container annotations
}

// Options configure a daemon beyond the defaults every daemon has: the runc handler
// (io.containerd.runc.v2, runc state under Dir) and the runsc handler (io.containerd.runsc.v1,
// systrap platform, see Daemon.RunscConfig).
type Options struct {
	// ExtraPath directories come first in the daemon's PATH, e.g. where the Triage shim is built.
	ExtraPath []string
	// Runtimes are registered as CRI handlers; one named runc or runsc replaces the default.
	Runtimes []Runtime
	// Env are extra KEY=VALUE variables for the daemon, and so for the shims it starts.
	Env []string
	// PrivateRun runs the daemon in a private mount namespace whose /run is Daemon.RunDir, as
	// the Kata recipe does: Kata hard-codes /run/vc and /run/kata-containers, which must not
	// touch the host's. A syslog socket is served at /run/syslog (Kata needs one). ctr and
	// crictl then run in that namespace too (their stdio fifos live in /run/containerd/fifo),
	// and so do commands from Daemon.Command.
	PrivateRun bool
	// RegistryConfigPath is CRI's registry config_path: a folder of <host>/hosts.toml files
	// (mirrors) the images service reads when it pulls. Empty: containerd's default.
	RegistryConfigPath string
}

// layout is where one daemon keeps everything, all under dir so teardown can find it.
type layout struct {
	dir string
}

func (l layout) path(name string) string { return filepath.Join(l.dir, name) }
func (l layout) config() string          { return l.path("config.toml") }
func (l layout) root() string            { return l.path("root") }
func (l layout) state() string           { return l.path("state") }
func (l layout) socket() string          { return l.path("sock") }
func (l layout) ttrpcSocket() string     { return l.path("sock.ttrpc") }
func (l layout) log() string             { return l.path("containerd.log") }
func (l layout) crictlConfig() string    { return l.path("crictl.yaml") }
func (l layout) runscConfig() string     { return l.path("runsc.toml") }
func (l layout) runscRoot() string       { return l.path("runsc") }
func (l layout) shimSockets() string     { return l.path("s") }
func (l layout) runcRoot() string        { return l.path("runc") }

// suffix is unique to the daemon among all daemons on the host; Daemon.ID appends it.
func (l layout) suffix() string { return filepath.Base(l.dir) }

// runtimes returns the default handlers with opts.Runtimes added or replacing them by name.
func runtimes(l layout, opts Options) []Runtime {
	all := []Runtime{
		// Root keeps CRI containers' runc state under dir instead of hostRuncRoot.
		{Name: "runc", Type: "io.containerd.runc.v2", Options: map[string]string{"Root": l.runcRoot()}},
		{Name: "runsc", Type: "io.containerd.runsc.v1", Options: map[string]string{
			"TypeUrl":    "io.containerd.runsc.v1.options",
			"ConfigPath": l.runscConfig(),
		}},
	}
	for _, r := range opts.Runtimes {
		replaced := false
		for i := range all {
			if all[i].Name == r.Name {
				all[i], replaced = r, true
			}
		}
		if !replaced {
			all = append(all, r)
		}
	}
	return all
}

// runtimeTable is one runtime in the CRI plugin's runtimes table; the keys are the same in 1.6 and 2.x.
func runtimeTable(r Runtime) map[string]any {
	t := map[string]any{"runtime_type": r.Type}
	if r.Path != "" {
		t["runtime_path"] = r.Path
	}
	if len(r.Options) > 0 {
		t["options"] = r.Options
	}
	if len(r.PodAnnotations) > 0 {
		t["pod_annotations"] = r.PodAnnotations
	}
	if len(r.ContainerAnnotations) > 0 {
		t["container_annotations"] = r.ContainerAnnotations
	}
	return t
}

// daemonConfig is the containerd config for version v: config version 2 for 1.6, version 4 for 2.x
// (where CRI is split into the images and runtime plugins). Both restrict_oom_score_adj, because
// root here lacks CAP_SYS_RESOURCE, and keep network namespaces under the state dir.
func daemonConfig(v Version, env Env, l layout, opts Options) map[string]any {
	rts := map[string]any{}
	for _, r := range runtimes(l, opts) {
		rts[r.Name] = runtimeTable(r)
	}
	opt := map[string]any{"path": l.path("opt")}
	if v == V16 {
		cri := map[string]any{
			"sandbox_image":                PauseImage,
			"netns_mounts_under_state_dir": true,
			"restrict_oom_score_adj":       true,
			"cni":                          map[string]any{"bin_dir": env.CNIBinDir, "conf_dir": env.CNIConfDir},
			"containerd":                   map[string]any{"snapshotter": "overlayfs", "runtimes": rts},
		}
		addRegistry(cri, opts)
		return map[string]any{
			"version": 2,
			"root":    l.root(),
			"state":   l.state(),
			"grpc":    map[string]any{"address": l.socket()},
			"ttrpc":   map[string]any{"address": l.ttrpcSocket()},
			"debug":   map[string]any{"level": "debug"},
			"plugins": map[string]any{
				"io.containerd.internal.v1.opt": opt,
				"io.containerd.grpc.v1.cri":     cri,
			},
		}
	}
	images := map[string]any{"pinned_images": map[string]any{"sandbox": PauseImage}}
	addRegistry(images, opts)
	return map[string]any{
		"version": 4,
		"root":    l.root(),
		"state":   l.state(),
		"debug":   map[string]any{"level": "debug"},
		// NRI would listen on the host's /var/run/nri/nri.sock.
		"disabled_plugins": []string{"io.containerd.nri.v1.nri"},
		"plugins": map[string]any{
			"io.containerd.server.v1.grpc":  map[string]any{"address": l.socket()},
			"io.containerd.server.v1.ttrpc": map[string]any{"address": l.ttrpcSocket()},
			"io.containerd.internal.v1.opt": opt,
			// Shims on containerd's 2.3+ shim library (the 2.x runc shim) bind their task sockets
			// here instead of HostShimSocketDir; the path must stay within 42 bytes.
			"io.containerd.shim.v1.manager": map[string]any{"socket_dir": l.shimSockets()},
			"io.containerd.cri.v1.images":   images,
			"io.containerd.cri.v1.runtime": map[string]any{
				"restrict_oom_score_adj":       true,
				"netns_mounts_under_state_dir": true,
				"cni":                          map[string]any{"bin_dirs": []string{env.CNIBinDir}, "conf_dir": env.CNIConfDir},
				"containerd":                   map[string]any{"runtimes": rts},
			},
		},
	}
}

// addRegistry adds CRI's registry table (the same keys in 1.6 and 2.x) to the plugin table
// that pulls images, when opts ask for one.
func addRegistry(plugin map[string]any, opts Options) {
	if opts.RegistryConfigPath != "" {
		plugin["registry"] = map[string]any{"config_path": opts.RegistryConfigPath}
	}
}

// runscConfig is the runsc handler's ConfigPath: systrap, because the kvm platform hangs
// here; oci-seccomp, so runsc applies the seccomp profile Triage's hardening writes.
func runscConfig(env Env, l layout) map[string]any {
	return map[string]any{
		"binary_name":  env.Runsc,
		"root":         l.runscRoot(),
		"runsc_config": map[string]any{"platform": "systrap", "oci-seccomp": "true"},
	}
}

// daemonPath is the daemon's PATH: extra dirs, then the version's runc shim, then gVisor's shim.
func daemonPath(v Version, env Env, opts Options) string {
	shim := env.RuncShim2
	if v == V16 {
		shim = env.RuncShim16
	}
	dirs := append(append([]string{}, opts.ExtraPath...),
		filepath.Dir(shim), filepath.Dir(env.RunscShim), "/usr/sbin", "/usr/bin", "/sbin", "/bin")
	return strings.Join(dirs, ":")
}

// prepareDir writes the daemon, runsc and crictl configs into l.dir and makes the shim socket dir.
func prepareDir(v Version, env Env, l layout, opts Options) error {
	if err := os.Mkdir(l.shimSockets(), 0o700); err != nil {
		return err
	}
	for path, cfg := range map[string]map[string]any{
		l.config():      daemonConfig(v, env, l, opts),
		l.runscConfig(): runscConfig(env, l),
	} {
		b, err := toml.Marshal(cfg)
		if err != nil {
			return fmt.Errorf("encode %s: %w", path, err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return err
		}
	}
	crictl := fmt.Sprintf("runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 30\n",
		l.socket(), l.socket())
	return os.WriteFile(l.crictlConfig(), []byte(crictl), 0o644)
}
