package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/triage-runtime/triage/node"
	"github.com/triage-runtime/triage/policy"
	"github.com/triage-runtime/triage/shim/delegate"
)

// checkStatus is the verdict on a tier or a host feature.
type checkStatus string

const (
	statusOK checkStatus = "ok"
	// statusMissing: something the tier needs is not installed (a binary, a config file).
	statusMissing checkStatus = "missing"
	// statusUnusable: installed, but this node cannot run it (no /dev/kvm, no vhost-vsock, ...).
	statusUnusable checkStatus = "unusable"
)

// worse orders statuses: ok < missing < unusable.
func worse(a, b checkStatus) checkStatus {
	rank := map[checkStatus]int{statusOK: 0, statusMissing: 1, statusUnusable: 2}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// versionTimeout bounds `<binary> -v` and `containerd --version`.
const versionTimeout = 5 * time.Second

// Kata's default configuration search path, after KATA_CONF_FILE (katautils, GetDefaultConfigFilePaths).
var kataDefaultConfigs = []string{
	"/etc/kata-containers/configuration.toml",
	"/usr/share/defaults/kata-containers/configuration.toml",
}

// kataDefaultRemoteSocket is remote_hypervisor_socket when a [hypervisor.remote] table sets none.
const kataDefaultRemoteSocket = "/run/peerpod/hypervisor.sock"

// kataHybridVsock are Kata hypervisors that reach the agent over a unix socket (hybrid vsock)
// rather than the host's vhost-vsock device.
var kataHybridVsock = []string{"clh", "firecracker", "dragonball"}

// problem is one thing that keeps a tier from running, and how to fix it.
type problem struct {
	Status checkStatus `json:"status"`
	What   string      `json:"what"`
	Fix    string      `json:"fix"`
}

// tierReport is what doctor found for one tier of the policy.
type tierReport struct {
	Tier    string      `json:"tier"`
	Runtime string      `json:"runtime"`
	Used    bool        `json:"used"` // the default tier, a rule's tier, or a fallback of one
	Status  checkStatus `json:"status"`
	// Shim is the delegate shim binary, resolved as the shim does; ShimVersion its `-v`.
	Shim        string    `json:"shim,omitempty"`
	ShimVersion string    `json:"shim_version,omitempty"`
	Problems    []problem `json:"problems,omitempty"`
	// Notes say what was found that needs no fix (runtime binary, platform, hypervisor).
	Notes []string `json:"notes,omitempty"`
}

func (r *tierReport) fail(s checkStatus, fix, format string, args ...any) {
	r.Problems = append(r.Problems, problem{Status: s, What: fmt.Sprintf(format, args...), Fix: fix})
	r.Status = worse(r.Status, s)
}

func (r *tierReport) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// hostCheck is one host feature Triage's hardening relies on.
type hostCheck struct {
	Name   string      `json:"name"`
	Status checkStatus `json:"status"`
	Detail string      `json:"detail"`
	Fix    string      `json:"fix,omitempty"`
}

// doctorReport is the whole result; --output json prints it.
type doctorReport struct {
	Policy string       `json:"policy"`
	Tiers  []tierReport `json:"tiers"`
	Host   []hostCheck  `json:"host"`
	// OK is false when a tier the policy uses cannot run: doctor then exits 1.
	OK bool `json:"ok"`
}

// errNodeUnfit is returned when a tier the policy uses cannot run on this node.
var errNodeUnfit = errors.New("a tier the policy uses cannot run on this node")

// nodeView is where doctor looks: Root prefixes every host path it reads (/proc, /sys, /dev
// and the delegates' config files' device checks), so tests can give it a fake host.
// Binaries are found on $PATH and run for real.
type nodeView struct {
	root string
}

func (n nodeView) path(p string) string { return filepath.Join(n.root, p) }

func doctor(args []string, stdout, stderr io.Writer) error {
	return runDoctor(args, stdout, stderr, nodeView{root: "/"})
}

func runDoctor(args []string, stdout, stderr io.Writer, node nodeView) error {
	fset := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fset.SetOutput(stderr)
	config := fset.String("config", defaultPolicy(), "policy `file` to check this node against ($TRIAGE_POLICY, else "+policy.DefaultPath+")")
	output := fset.String("output", "text", "output `format`: text or json")
	fset.Usage = func() {
		fmt.Fprintf(fset.Output(), "usage: triage doctor [--config FILE] [--output text|json]\n\n"+
			"Checks that this node can run each tier of the policy; exits 1 if a tier the policy\n"+
			"uses (default tier, rule tiers, fallbacks) cannot run.\n\nflags:\n")
		fset.PrintDefaults()
	}
	positional, err := parse(fset, args)
	if err != nil {
		return err
	}
	if len(positional) > 0 {
		return usageError(fset, "unexpected argument %q: give the policy file with --config", positional[0])
	}
	if *output != "text" && *output != "json" {
		return usageError(fset, "--output %q: use text or json", *output)
	}
	p, err := loadPolicy(*config)
	if err != nil {
		return err
	}
	ctx := context.Background()
	rep := diagnose(ctx, p, node)
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printDoctor(stdout, rep)
	}
	if !rep.OK {
		var bad []string
		for _, t := range rep.Tiers {
			if t.Used && t.Status != statusOK {
				bad = append(bad, fmt.Sprintf("%s (%s)", t.Tier, t.Status))
			}
		}
		return fmt.Errorf("%w: %s", errNodeUnfit, strings.Join(bad, ", "))
	}
	return nil
}

// diagnose checks every tier of p, from the weakest, and the host.
func diagnose(ctx context.Context, p *policy.Policy, node nodeView) doctorReport {
	rep := doctorReport{Policy: p.Source, OK: true}
	used := usedTiers(p)
	containerd, _ := exec.LookPath("containerd")
	for _, t := range p.TiersByStrength() {
		r := checkTier(ctx, t, containerd, node)
		r.Used = used[t.Name]
		if r.Used && r.Status != statusOK {
			rep.OK = false
		}
		rep.Tiers = append(rep.Tiers, r)
	}
	rep.Host = checkHost(ctx, node, containerd)
	return rep
}

// usedTiers are the tiers a workload can be routed to without asking: the default tier, the
// tiers of rules that run, and the fallbacks of those, transitively.
func usedTiers(p *policy.Policy) map[string]bool {
	used := map[string]bool{}
	var add func(string)
	add = func(name string) {
		t, ok := p.Tier(name)
		if !ok || used[name] {
			return
		}
		used[name] = true
		add(t.Fallback)
	}
	add(p.DefaultTier)
	for _, r := range p.Rules {
		if r.Action == policy.ActionRun {
			add(r.Tier)
		}
	}
	return used
}

func checkTier(ctx context.Context, t *policy.Tier, containerd string, node nodeView) tierReport {
	r := tierReport{Tier: t.Name, Runtime: t.Runtime, Status: statusOK}
	if t.Fallback != "" {
		r.note("fallback: %s (not applied by the shim yet; listed as used)", t.Fallback)
	}
	if t.Hosted() {
		r.note("runs in Triage's pod shim, which hosts containerd's runc task service: no delegate shim")
	} else {
		checkShim(ctx, &r, t, containerd)
	}
	switch t.Kind() {
	case policy.KindRunc:
		checkRunc(ctx, &r, t)
	case policy.KindGVisor:
		checkRunsc(ctx, &r, t, node)
	case policy.KindKata:
		checkKata(&r, t, node)
	}
	return r
}

// checkShim finds the tier's delegate shim and its version.
func checkShim(ctx context.Context, r *tierReport, t *policy.Tier, containerd string) {
	// The same resolution as the shim's start: shim_path, next to the shim, $PATH, next to containerd.
	shim, err := delegate.Resolve(t.Runtime, t.ShimPath, containerd)
	switch {
	case errors.Is(err, delegate.ErrShimNotFound) && t.ShimPath == "":
		name, _ := delegate.BinaryName(t.Runtime)
		r.fail(statusMissing, fmt.Sprintf("install %s on $PATH or next to containerd-shim-triage-v2, or set [tier.%s] shim_path", name, t.Name),
			"delegate shim %s not found", name)
	case err != nil:
		r.fail(statusMissing, fmt.Sprintf("fix [tier.%s] shim_path", t.Name), "delegate shim: %v", err)
	default:
		r.Shim = shim
		versionArgs := []string{"-v"}
		if t.Kind() == policy.KindKata {
			// Kata's -v prints the version of its containerd shim library; --version is Kata's own.
			versionArgs = []string{"--version"}
		}
		v, err := binaryVersion(ctx, shim, versionArgs...)
		if err != nil {
			r.fail(statusUnusable, "reinstall the shim for this machine's architecture", "%s %s: %v", shim, versionArgs[0], err)
		}
		r.ShimVersion = v
	}
}

func checkRunc(ctx context.Context, r *tierReport, t *policy.Tier) {
	bin := policy.DefaultRuncBinary
	if t.Runc != nil && t.Runc.BinaryName != "" {
		bin = t.Runc.BinaryName
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		r.fail(statusMissing, fmt.Sprintf("install runc (apt-get install runc) or set [tier.%s.runc] binary_name", t.Name), "runc binary %q: %v", bin, err)
		return
	}
	v, err := binaryVersion(ctx, path, "--version")
	if err != nil {
		r.fail(statusUnusable, "reinstall runc", "%s --version: %v", path, err)
		return
	}
	r.note("runc: %s (%s)", path, v)
}

// runscConfig is the part of gVisor's shim config (the tier's config_path) doctor reads.
type runscConfig struct {
	BinaryName  string            `toml:"binary_name"`
	RunscConfig map[string]string `toml:"runsc_config"`
}

func checkRunsc(ctx context.Context, r *tierReport, t *policy.Tier, view nodeView) {
	var cfg runscConfig
	if t.ConfigPath != "" {
		data, err := os.ReadFile(t.ConfigPath)
		if err != nil {
			r.fail(statusMissing, fmt.Sprintf("write gVisor's shim config there or fix [tier.%s] config_path", t.Name), "runsc config: %v", err)
			return
		}
		// Not strict: the file is gVisor's, with keys doctor does not need.
		if err := toml.Unmarshal(data, &cfg); err != nil {
			r.fail(statusUnusable, "fix the file: gVisor's shim would refuse it too", "runsc config %s: %v", t.ConfigPath, err)
			return
		}
	}
	bin := cmpOr(cfg.BinaryName, "runsc")
	path, err := exec.LookPath(bin)
	if err != nil {
		r.fail(statusMissing, "install gVisor's runsc, or set binary_name in "+cmpOr(t.ConfigPath, "the tier's config_path"), "runsc binary %q: %v", bin, err)
	} else if v, err := binaryVersion(ctx, path, "--version"); err != nil {
		r.fail(statusUnusable, "reinstall runsc for this machine", "%s --version: %v", path, err)
	} else {
		r.note("runsc: %s (%s)", path, v)
	}
	switch seccomp := t.Hardening.Seccomp; {
	case seccomp == policy.SeccompKeep:
	case node.GVisorOCISeccomp(t.ConfigPath):
		r.note("oci-seccomp: runsc applies the tier's seccomp profile (%s)", seccomp)
	default:
		r.fail(statusUnusable, fmt.Sprintf(`add oci-seccomp = "true" under [runsc_config] in %s, or set [tier.%s.hardening] seccomp = %q`, cmpOr(t.ConfigPath, "the tier's config_path"), t.Name, policy.SeccompKeep),
			"seccomp = %q, but runsc ignores the OCI profile without oci-seccomp: every workload of the tier is refused", seccomp)
	}
	platform := cmpOr(cfg.RunscConfig["platform"], "systrap")
	switch platform {
	case "kvm":
		if err := openDevice(view, "/dev/kvm"); err != nil {
			r.fail(statusUnusable, `set runsc_config platform = "systrap" (or load kvm and give access to /dev/kvm)`, "platform kvm needs /dev/kvm: %v", err)
		} else {
			r.note("platform kvm: /dev/kvm present (nested KVM may still hang: try systrap if containers do not start)")
		}
	case "systrap":
		r.note("platform systrap: needs no device")
	case "ptrace":
		r.note("platform ptrace: needs no device; slower than systrap")
	default:
		r.note("platform %s: not checked", platform)
	}
}

func checkKata(r *tierReport, t *policy.Tier, node nodeView) {
	path := t.ConfigPath
	if path == "" {
		for _, p := range kataDefaultConfigs {
			if _, err := os.Stat(p); err == nil {
				path = p
				break
			}
		}
		if path == "" {
			r.fail(statusMissing, fmt.Sprintf("install Kata's configuration.toml or set [tier.%s] config_path", t.Name),
				"no Kata configuration in %s", strings.Join(kataDefaultConfigs, " or "))
			return
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		r.fail(statusMissing, fmt.Sprintf("install Kata's configuration there or fix [tier.%s] config_path", t.Name), "Kata configuration: %v", err)
		return
	}
	var cfg struct {
		Hypervisor map[string]map[string]any `toml:"hypervisor"`
	}
	if err := toml.Unmarshal(data, &cfg); err != nil {
		r.fail(statusUnusable, "fix the file: Kata would refuse it too", "Kata configuration %s: %v", path, err)
		return
	}
	if len(cfg.Hypervisor) == 0 {
		r.fail(statusUnusable, "add a [hypervisor.NAME] table (qemu, clh, firecracker, dragonball or remote)", "%s has no [hypervisor.*] table", path)
		return
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Hypervisor)) {
		checkKataHypervisor(r, name, cfg.Hypervisor[name], node)
	}
}

func checkKataHypervisor(r *tierReport, name string, hv map[string]any, node nodeView) {
	str := func(k string) string { s, _ := hv[k].(string); return s }
	if name == "remote" {
		// A remote hypervisor (peer pods, or a test double) runs the VM elsewhere: the node
		// needs neither /dev/kvm nor vhost-vsock, only the hypervisor service's socket.
		sock := cmpOr(str("remote_hypervisor_socket"), kataDefaultRemoteSocket)
		if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
			r.fail(statusUnusable, "start the remote hypervisor service (e.g. cloud-api-adaptor) that serves it", "remote hypervisor socket %s is not there", sock)
			return
		}
		r.note("hypervisor remote (%s): needs no /dev/kvm or /dev/vhost-vsock", sock)
		return
	}
	r.note("hypervisor %s", name)
	for _, k := range []string{"path", "kernel", "image", "initrd"} {
		if p := str(k); p != "" {
			if _, err := os.Stat(p); err != nil {
				r.fail(statusMissing, "install Kata's "+k+" or fix it in the Kata configuration", "hypervisor.%s %s: %v", name, k, err)
			}
		}
	}
	if err := openDevice(node, "/dev/kvm"); err != nil {
		r.fail(statusUnusable, "enable virtualization (VT-x/AMD-V, or nested virtualization on a VM) and load kvm_intel or kvm_amd; or use a [hypervisor.remote] config",
			"/dev/kvm: %v", err)
	}
	if !slices.Contains(kataHybridVsock, name) {
		if err := openDevice(node, "/dev/vhost-vsock"); err != nil {
			r.fail(statusUnusable, "modprobe vhost_vsock (the guest agent talks over vsock); or use a [hypervisor.remote] config",
				"/dev/vhost-vsock: %v", err)
		}
	}
}

// openDevice checks that the device exists and opens read-write, as the hypervisor will.
func openDevice(node nodeView, dev string) error {
	f, err := os.OpenFile(node.path(dev), os.O_RDWR, 0)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return pe.Err // the path is in the message already
		}
		return err
	}
	return f.Close()
}

// checkHost reports the kernel features Triage's hardening uses and containerd's version.
func checkHost(ctx context.Context, node nodeView, containerd string) []hostCheck {
	var out []hostCheck
	// Seccomp: the field exists when the kernel has CONFIG_SECCOMP.
	seccomp := hostCheck{Name: "seccomp", Status: statusMissing, Detail: "no Seccomp field in /proc/self/status",
		Fix: "use a kernel built with CONFIG_SECCOMP and CONFIG_SECCOMP_FILTER: Triage's seccomp profiles need it"}
	if v, ok := statusField(node.path("/proc/self/status"), "Seccomp"); ok {
		seccomp.Status, seccomp.Detail, seccomp.Fix = statusOK, "supported (Seccomp: "+v+")", ""
	}
	out = append(out, seccomp)

	apparmor := hostCheck{Name: "apparmor", Status: statusMissing, Detail: "not enabled",
		Fix: "boot with apparmor=1 security=apparmor to let runc tiers use AppArmor (gVisor and Kata do not)"}
	if b, err := os.ReadFile(node.path("/sys/module/apparmor/parameters/enabled")); err == nil && strings.TrimSpace(string(b)) == "Y" {
		apparmor.Status, apparmor.Detail, apparmor.Fix = statusOK, "enabled", ""
	}
	out = append(out, apparmor)

	userns := hostCheck{Name: "user namespaces", Status: statusMissing, Detail: "/proc/sys/user/max_user_namespaces is missing or 0",
		Fix: "sysctl -w user.max_user_namespaces=15000 to let tiers remap root"}
	if b, err := os.ReadFile(node.path("/proc/sys/user/max_user_namespaces")); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n > 0 {
			userns.Status, userns.Detail, userns.Fix = statusOK, "max_user_namespaces="+strconv.Itoa(n), ""
		}
	}
	out = append(out, userns)

	ctrd := hostCheck{Name: "containerd", Status: statusMissing, Detail: "not on $PATH", Fix: "install containerd >= 1.6"}
	if containerd != "" {
		if v, err := binaryVersion(ctx, containerd, "--version"); err == nil {
			ctrd.Status, ctrd.Detail, ctrd.Fix = statusOK, v, ""
		} else {
			ctrd.Status, ctrd.Detail, ctrd.Fix = statusUnusable, err.Error(), "reinstall containerd"
		}
	}
	return append(out, ctrd)
}

// statusField returns the value of a "Name:\tvalue" line of a /proc status file.
func statusField(path, name string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// binaryVersion runs bin with args and returns a one-line version: the value of a
// "Version:" line (containerd's shim library prints one), else the first line.
func binaryVersion(ctx context.Context, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, versionTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return "", fmt.Errorf("%w: %s", err, firstLine(msg))
		}
		return "", err
	}
	out := strings.TrimSpace(stdout.String())
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Version:"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return firstLine(out), nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// printDoctor prints the tier table, then per tier what was found, then the host checks.
func printDoctor(w io.Writer, rep doctorReport) {
	fmt.Fprintf(w, "policy: %s\n\n", rep.Policy)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIER\tUSED\tSTATUS\tMISSING / UNUSABLE\tFIX")
	for _, t := range rep.Tiers {
		used := "no"
		if t.Used {
			used = "yes"
		}
		if len(t.Problems) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\n", t.Tier, used, t.Status)
			continue
		}
		for i, p := range t.Problems {
			name, u, st := t.Tier, used, string(t.Status)
			if i > 0 {
				name, u, st = "", "", ""
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, u, st, p.What, p.Fix)
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, t := range rep.Tiers {
		fmt.Fprintf(w, "%s: %s", t.Tier, t.Runtime)
		if t.Shim != "" {
			fmt.Fprintf(w, ", shim %s", t.Shim)
			if t.ShimVersion != "" {
				fmt.Fprintf(w, " (%s)", t.ShimVersion)
			}
		}
		fmt.Fprintln(w)
		for _, n := range t.Notes {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tSTATUS\tDETAIL\tFIX")
	for _, h := range rep.Host {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", h.Name, h.Status, h.Detail, cmpOr(h.Fix, "-"))
	}
	tw.Flush()
}
