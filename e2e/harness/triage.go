package harness

import (
	"bytes"
	"os/exec"
	"path/filepath"

	"github.com/pelletier/go-toml/v2"
)

// TriageRuntime runs `triage config containerd` (from the folder bin) for containerd v and
// turns its triage runtime table into a Runtime, so that what runs is the documented snippet.
// A key the harness cannot register fails t.
func TriageRuntime(t T, bin string, v Version, policyPath string) Runtime {
	t.Helper()
	version, plugin := "2.x", "io.containerd.cri.v1.runtime"
	if v == V16 {
		version, plugin = "1.6", "io.containerd.grpc.v1.cri"
	}
	out, err := exec.Command(filepath.Join(bin, "triage"), "config", "containerd", "--version", version, "--config-path", policyPath).Output()
	if err != nil {
		t.Fatalf("triage config containerd --version %s: %v", version, err)
	}
	var cfg struct {
		Plugins map[string]struct {
			Containerd struct {
				Runtimes map[string]struct {
					RuntimeType          string            `toml:"runtime_type"`
					PodAnnotations       []string          `toml:"pod_annotations"`
					ContainerAnnotations []string          `toml:"container_annotations"`
					Options              map[string]string `toml:"options"`
				} `toml:"runtimes"`
			} `toml:"containerd"`
		} `toml:"plugins"`
	}
	dec := toml.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("triage config containerd --version %s: %v:\n%s", version, err, out)
	}
	rt, ok := cfg.Plugins[plugin].Containerd.Runtimes["triage"]
	if !ok || len(cfg.Plugins) != 1 {
		t.Fatalf("triage config containerd --version %s registers no triage runtime under %s:\n%s", version, plugin, out)
	}
	return Runtime{Name: "triage", Type: rt.RuntimeType, Options: rt.Options,
		PodAnnotations: rt.PodAnnotations, ContainerAnnotations: rt.ContainerAnnotations}
}

// PassThroughHardening is the [tier.NAME.hardening] table of a tier whose hardening changes
// nothing in the spec, so that what is measured or validated through it is Triage's routing
// alone.
func PassThroughHardening(tier string) string {
	return `  [tier.` + tier + `.hardening]
  seccomp = "keep"
  capabilities = ["ALL"]
  no_new_privileges = false
  mask_proc = false
  pids_limit = 0
  host_namespaces = "allow"
  sensitive_mounts = "allow"
  host_devices = "allow"
  hooks = "allow"
  cgroups_path = "allow"
  unknown_fields = "allow"
`
}
