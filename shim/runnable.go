package shim

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/pelletier/go-toml/v2"

	"github.com/triage-runtime/triage/policy"
	"github.com/triage-runtime/triage/shim/delegate"
)

// runnable checks that tier t can run on this node and returns its delegate
// shim binary ("" for a tier Triage's pod shim hosts, which needs runc).
// Beyond the binary, Kata needs the host's virtualisation devices, unless
// its configuration uses a remote hypervisor.
func runnable(t *policy.Tier, publishBinary string) (string, error) {
	if t.Hosted() {
		runc := policy.DefaultRuncBinary
		if t.Runc != nil && t.Runc.BinaryName != "" {
			runc = t.Runc.BinaryName
		}
		if _, err := exec.LookPath(runc); err != nil {
			return "", fmt.Errorf("%w: install runc on containerd's PATH, or set [tier.%s.runc] binary_name", err, t.Name)
		}
		return "", nil
	}
	binary, err := delegate.Resolve(t.Runtime, t.ShimPath, publishBinary)
	if err != nil {
		return "", err
	}
	if t.Kind() == policy.KindKata {
		if err := kataDevices(t.ConfigPath); err != nil {
			return "", err
		}
	}
	return binary, nil
}

// kataDevices checks the devices the hypervisor of a Kata configuration
// needs: /dev/kvm for every local VM, /dev/vhost-vsock for QEMU's agent
// channel. A remote hypervisor needs neither.
func kataDevices(configPath string) error {
	var cfg struct {
		Hypervisor map[string]any `toml:"hypervisor"`
	}
	if configPath != "" {
		b, err := os.ReadFile(configPath)
		if err != nil {
			return fmt.Errorf("read the Kata configuration: %w", err)
		}
		if err := toml.Unmarshal(b, &cfg); err != nil {
			return fmt.Errorf("Kata configuration %s: %w", configPath, err)
		}
	}
	if _, remote := cfg.Hypervisor["remote"]; remote {
		return nil
	}
	need := []string{"/dev/kvm"}
	if _, qemu := cfg.Hypervisor["qemu"]; qemu || len(cfg.Hypervisor) == 0 {
		need = append(need, "/dev/vhost-vsock")
	}
	for _, dev := range need {
		if _, err := os.Stat(dev); err != nil {
			return fmt.Errorf("%s is missing, and Kata's VM needs it (load the kvm and vhost_vsock modules, or use a node with virtualisation)", dev)
		}
	}
	return nil
}
