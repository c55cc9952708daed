package shim

import (
	"os"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/triage-runtime/triage/hardening"
	"github.com/triage-runtime/triage/policy"
)

// readHost reads what the tier's hardening depends on in this host.
func readHost(t *policy.Tier) hardening.Host {
	return hardening.Host{
		AppArmor:         strings.TrimSpace(readFile("/sys/module/apparmor/parameters/enabled")) == "Y",
		UserNamespaces:   userNamespaces(),
		KataGuestSeccomp: t.Kind() == policy.KindKata && kataGuestSeccomp(t.ConfigPath),
	}
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func userNamespaces() bool {
	if _, err := os.Stat("/proc/self/ns/user"); err != nil {
		return false
	}
	n, err := strconv.Atoi(strings.TrimSpace(readFile("/proc/sys/user/max_user_namespaces")))
	return err == nil && n > 0
}

// kataGuestSeccomp tells whether the Kata configuration lets the guest apply
// the OCI seccomp profile (runtime.disable_guest_seccomp = false; Kata's
// default is true).
func kataGuestSeccomp(configPath string) bool {
	var cfg struct {
		Runtime struct {
			DisableGuestSeccomp *bool `toml:"disable_guest_seccomp"`
		} `toml:"runtime"`
	}
	b, err := os.ReadFile(configPath)
	if err != nil || toml.Unmarshal(b, &cfg) != nil || cfg.Runtime.DisableGuestSeccomp == nil {
		return false
	}
	return !*cfg.Runtime.DisableGuestSeccomp
}
