// Package harness gives end-to-end tests real, private containerd daemons (1.6 and 2.x) built by
// e2e/setup.sh: each daemon keeps its root, state and sockets under one short temporary directory,
// runs containers with runc, gVisor and any runtime a test registers (the Triage shim), and is torn
// down with everything it started. It also captures what a daemon's containers left behind
// (processes, mounts, sockets, bundles, file descriptors) so tests can assert that nothing leaked.
//
// Only e2e tests (build tag e2e) may import this package; production code never does.
package harness

import (
	"bufio"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// DefaultCache is where e2e/setup.sh builds everything unless TRIAGE_CI_CACHE says otherwise.
const DefaultCache = "/var/cache/triage-ci"

// setupHint is the fix for every missing or stale piece of the e2e environment.
const setupHint = "run `make e2e-setup` (e2e/setup.sh) first"

// Env holds the absolute paths e2e/setup.sh wrote to ${TRIAGE_CI_CACHE}/env.
type Env struct {
	Ctrd16Bin    string // CTRD16_BIN: containerd 1.6 (Debian)
	Ctr16        string // CTR16: ctr 1.6
	RuncShim16   string // RUNC_SHIM16: containerd-shim-runc-v2 from containerd 1.6
	Ctrd2Bin     string // CTRD2_BIN: containerd 2.x
	Ctr2         string // CTR2: ctr 2.x
	RuncShim2    string // RUNC_SHIM2: containerd-shim-runc-v2 from containerd 2.x
	Runsc        string // RUNSC: runsc matching RunscShim
	RunscShim    string // RUNSC_SHIM: containerd-shim-runsc-v1 printing a plain address (1.6 and 2.x)
	RunscNew     string // RUNSC_NEW: runsc matching RunscShimNew
	RunscShimNew string // RUNSC_SHIM_NEW: containerd-shim-runsc-v1 printing JSON (containerd >= 1.7 only)
	Crictl       string // CRICTL
	Nerdctl      string // NERDCTL: nerdctl v1, built from its module
	BusyboxTar   string // BUSYBOX_TAR: OCI archive of docker.io/library/busybox:e2e
	PauseTar     string // PAUSE_TAR: OCI archive of localhost/e2e/pause:1
	CNIBinDir    string // CNI_BIN_DIR: loopback and the link-local dummy plugin
	CNIConfDir   string // CNI_CONF_DIR
	// Kata: optional when reading, so a cache built before setup.sh had its Kata step still
	// serves the other tests; tests that run Kata call RequireKata, which fails without them.
	KataShim    string // KATA_SHIM: the real containerd-shim-kata-v2, built from Kata's module
	KataRuntime string // KATA_RUNTIME: kata-runtime of the same build (kata-check, env)
	KataFakeVM  string // KATA_FAKEVM: the test double standing in for the micro-VM (e2e/kata/fakevm)
	// Critest is optional for the same reason; only `make critest` (e2e/critest) needs it.
	Critest string // CRITEST: the CRI validation suite (sigs.k8s.io/cri-tools/cmd/critest, a test binary)
}

// fields maps each env file key to the field it fills.
func (e *Env) fields() map[string]*string {
	return map[string]*string{
		"CTRD16_BIN":     &e.Ctrd16Bin,
		"CTR16":          &e.Ctr16,
		"RUNC_SHIM16":    &e.RuncShim16,
		"CTRD2_BIN":      &e.Ctrd2Bin,
		"CTR2":           &e.Ctr2,
		"RUNC_SHIM2":     &e.RuncShim2,
		"RUNSC":          &e.Runsc,
		"RUNSC_SHIM":     &e.RunscShim,
		"RUNSC_NEW":      &e.RunscNew,
		"RUNSC_SHIM_NEW": &e.RunscShimNew,
		"CRICTL":         &e.Crictl,
		"NERDCTL":        &e.Nerdctl,
		"BUSYBOX_TAR":    &e.BusyboxTar,
		"PAUSE_TAR":      &e.PauseTar,
		"CNI_BIN_DIR":    &e.CNIBinDir,
		"CNI_CONF_DIR":   &e.CNIConfDir,
		"KATA_SHIM":      &e.KataShim,
		"KATA_RUNTIME":   &e.KataRuntime,
		"KATA_FAKEVM":    &e.KataFakeVM,
		"CRITEST":        &e.Critest,
	}
}

// optionalKeys may be missing from the env file; see Env.KataShim and Env.Critest.
var optionalKeys = map[string]bool{"KATA_SHIM": true, "KATA_RUNTIME": true, "KATA_FAKEVM": true, "CRITEST": true}

// RequireKata fails the test unless setup.sh built the Kata shim and fakevm.
func (e Env) RequireKata(t T) {
	t.Helper()
	if e.KataShim == "" || e.KataRuntime == "" || e.KataFakeVM == "" {
		t.Fatalf("e2e environment: %s has no KATA_SHIM, KATA_RUNTIME or KATA_FAKEVM; %s", EnvPath(), setupHint)
	}
}

// EnvPath is the env file e2e/setup.sh writes: ${TRIAGE_CI_CACHE:-/var/cache/triage-ci}/env.
func EnvPath() string {
	cache := os.Getenv("TRIAGE_CI_CACHE")
	if cache == "" {
		cache = DefaultCache
	}
	return filepath.Join(cache, "env")
}

// LoadEnv reads the env file and checks that every path in it exists. It fails the test, never
// skips it: an e2e test that skips for lack of setup would report green without testing anything.
func LoadEnv(t T) Env {
	t.Helper()
	env, err := ReadEnv(EnvPath())
	if err != nil {
		t.Fatalf("e2e environment: %v; %s", err, setupHint)
	}
	return env
}

// ReadEnv parses an env file of KEY=VALUE lines (blank lines and # comments allowed). Every key
// must be known and present (except optionalKeys), and every value an existing absolute path.
func ReadEnv(path string) (Env, error) {
	var env Env
	f, err := os.Open(path)
	if err != nil {
		return env, err
	}
	defer f.Close()
	fields := env.fields()
	seen := make(map[string]bool, len(fields))
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		field, known := fields[key]
		switch {
		case !ok:
			return env, fmt.Errorf("%s:%d: want KEY=VALUE, got %q", path, n, line)
		case !known:
			return env, fmt.Errorf("%s:%d: unknown key %q (setup.sh and the harness disagree)", path, n, key)
		case !filepath.IsAbs(value):
			return env, fmt.Errorf("%s:%d: %s=%q is not an absolute path", path, n, key, value)
		}
		*field = value
		seen[key] = true
	}
	if err := sc.Err(); err != nil {
		return env, fmt.Errorf("read %s: %w", path, err)
	}
	var errs []error
	for _, key := range slices.Sorted(maps.Keys(fields)) {
		field := fields[key]
		if !seen[key] && optionalKeys[key] {
			continue
		}
		if !seen[key] {
			errs = append(errs, fmt.Errorf("%s: no %s", path, key))
			continue
		}
		if _, err := os.Stat(*field); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", path, key, err))
		}
	}
	return env, errors.Join(errs...)
}
