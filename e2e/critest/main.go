// Command critest runs the CRI validation suite (sigs.k8s.io/cri-tools critest, built by
// e2e/setup.sh) against the triage handler and the plain runc handler of one private containerd,
// one handler after the other, with no network: the images critest pulls come from a registry
// on 127.0.0.1 (package registry) that containerd reaches through hosts.toml mirrors. The
// triage handler is registered as `triage config containerd` prints it, with a pass-through
// policy (one runc tier that keeps the spec as CRI wrote it), so a spec that differs between the
// handlers is a difference Triage makes. It writes the counts and the differences to -out.
// Run it with `make critest` (containerd 2.x, then 1.6).
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/triage-runtime/triage/e2e/critest/registry"
	"github.com/triage-runtime/triage/e2e/harness"
)

// passThroughPolicy routes every workload to runc and changes nothing in its spec, so the
// triage handler should pass what the runc handler passes.
var passThroughPolicy = `default_tier = "trusted"
audit_log = "@AUDIT@"

[tier.trusted]
strength = 10
runtime = "io.containerd.runc.v2"
  [tier.trusted.runc]
  root = "@RUNC_ROOT@"
` + harness.PassThroughHardening("trusted")

// skips are the specs that cannot pass on this machine whatever the runtime, with the reason;
// each key is a ginkgo -skip regular expression.
var skips = []struct{ re, reason string }{
	{`public image with digest should be pulled and removed`,
		"pulls gcr.io/k8s-staging-cri-tools/test-image-digest@sha256:9700f9…, a digest fixed upstream; a local image cannot have it"},
	{`runtime should support port mapping with`,
		"reaches the pod through its IP or a host port: the e2e CNI gives pods a dummy, link-local eth0 and no portmap plugin"},
	{`runtime should support portforward \[Conformance\]`,
		"first checks the web server at the pod IP (checkMainPage), which the dummy link-local eth0 does not route"},
	{`when running multiple containers in a pod should support network`,
		"fetches the httpd page at the pod IP, which the dummy link-local eth0 does not route"},
	{`runtime should support MaskedPaths`,
		"masks /bin/ls and expects `sh -c ls` to fail; the image's shell is Debian's busybox-static, whose sh runs " +
			"the ls applet itself (FEATURE_SH_STANDALONE) without looking at /bin/ls, and /bin/ls is a symlink to busybox"},
}

func main() {
	out := flag.String("out", "bench/CRITEST.md", "report to write")
	versions := flag.String("containerd", "2,1.6", "containerd versions to run, in order, comma separated: 2, 1.6")
	handlers := flag.String("handlers", "runc,triage", "CRI handlers to run critest against, in order")
	flag.Parse()
	p := &harness.Program{}
	defer p.Close()
	env, bin := harness.ProgramEnv(p, "critest")
	if env.Critest == "" {
		p.Fatalf("e2e environment: %s has no CRITEST: run `make e2e-setup` first", harness.EnvPath())
	}
	work, err := os.MkdirTemp("/tmp", "critest")
	if err != nil {
		p.Fatalf("%v", err)
	}
	p.Cleanup(func() { _ = os.RemoveAll(work) })

	start := time.Now()
	addr := serveImages(p, env, work)
	certs := writeHosts(p, work, addr)
	rep := report{Critest: env.Critest, Skips: skips}
	for _, v := range strings.Split(*versions, ",") {
		version := map[string]harness.Version{"2": harness.V2, "1.6": harness.V16}[v]
		if version == 0 {
			p.Fatalf("-containerd: unknown version %q; use 2 or 1.6", v)
		}
		rep.Runs = append(rep.Runs, runVersion(p, env, version, bin, certs, work, strings.Split(*handlers, ",")))
	}
	rep.Wall = time.Since(start)
	if err := os.WriteFile(*out, []byte(rep.markdown()), 0o644); err != nil {
		p.Fatalf("%v", err)
	}
	fmt.Fprintf(os.Stderr, "wrote %s in %v\n", *out, rep.Wall.Round(time.Second))
	if lost := rep.regressions(); len(lost) > 0 {
		p.Fatalf("specs that pass with runc but not with triage (see %s):\n  %s", *out, strings.Join(lost, "\n  "))
	}
}

// serveImages builds the stand-in binaries and every image of the catalog, and serves them on
// 127.0.0.1; it returns the registry's host:port.
func serveImages(p *harness.Program, env harness.Env, work string) string {
	h, err := buildHelpers(filepath.Join(work, "helpers"))
	if err != nil {
		p.Fatalf("%v", err)
	}
	busybox, err := loadBase(env.BusyboxTar)
	if err != nil {
		p.Fatalf("%v", err)
	}
	pause, err := loadBase(env.PauseTar)
	if err != nil {
		p.Fatalf("%v", err)
	}
	reg := registry.New()
	for _, img := range catalog(busybox, pause, h) {
		if err := push(reg, img); err != nil {
			p.Fatalf("image %s: %v", img.repo, err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		p.Fatalf("registry: %v", err)
	}
	srv := reg.Serve(l)
	p.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}

// buildHelpers builds e2e/critest/webserver and e2e/critest/nnp statically: they run in
// busybox images, which have no libc.
func buildHelpers(dir string) (helpers, error) {
	const pkg = "github.com/triage-runtime/triage/e2e/critest/"
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", dir+"/", pkg+"webserver", pkg+"nnp")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return helpers{}, fmt.Errorf("build the image helpers: %v:\n%s", err, b)
	}
	var h helpers
	var err error
	if h.webserver, err = os.ReadFile(filepath.Join(dir, "webserver")); err != nil {
		return h, err
	}
	h.nnp, err = os.ReadFile(filepath.Join(dir, "nnp"))
	return h, err
}

// writeHosts writes a hosts.toml per mirrored registry, all sending pulls to addr over plain
// HTTP, and returns the folder for CRI's registry config_path.
func writeHosts(p *harness.Program, work, addr string) string {
	certs := filepath.Join(work, "certs.d")
	for _, host := range mirroredHosts {
		dir := filepath.Join(certs, host)
		toml := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n",
			"https://"+host, "http://"+addr)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			p.Fatalf("%v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(toml), 0o644); err != nil {
			p.Fatalf("%v", err)
		}
	}
	return certs
}

// runVersion starts containerd v with the triage handler and runs critest once per handler.
func runVersion(p *harness.Program, env harness.Env, v harness.Version, bin, certs, work string, handlers []string) run {
	dp := &harness.Program{} // this daemon's cleanups, run before the next version starts
	defer dp.Close()
	policy := filepath.Join(work, "policy-"+v.String()+".toml")
	audit := filepath.Join(work, "decisions-"+v.String()+".jsonl")
	d := harness.StartContainerd(dp, env, v, harness.Options{
		ExtraPath:          []string{bin},
		Runtimes:           []harness.Runtime{harness.TriageRuntime(p, bin, v, policy)},
		RegistryConfigPath: certs,
	})
	pol := strings.NewReplacer("@AUDIT@", audit, "@RUNC_ROOT@", filepath.Join(d.Dir(), "runc")).Replace(passThroughPolicy)
	if err := os.WriteFile(policy, []byte(pol), 0o644); err != nil {
		p.Fatalf("%v", err)
	}
	// CRI asks each runtime for its features (-info) when it starts, and Triage reads the
	// policy to answer: start again now that the policy (which needs the daemon's folder)
	// exists, as a node's containerd would find it.
	d.Restart(dp)
	r := run{Version: v.String()}
	for _, h := range handlers {
		fmt.Fprintf(os.Stderr, "%v: critest --runtime-handler %s\n", v, h)
		before := snapshot(p, d)
		s := runCritest(p, env, d, h, work)
		leaks, err := harness.Leaks(d.Dir(), before, nil)
		if err != nil {
			p.Fatalf("snapshot: %v", err)
		}
		s.Leaks = leaks
		fmt.Fprintf(os.Stderr, "%v %s: %d passed, %d failed, %d skipped in %v\n", v, h,
			s.count("passed"), s.failed(), s.count("skipped"), s.Wall.Round(time.Second))
		r.Suites = append(r.Suites, s)
	}
	return r
}

func snapshot(p *harness.Program, d *harness.Daemon) harness.Resources {
	r, err := harness.Snapshot(d.Dir())
	if err != nil {
		p.Fatalf("snapshot: %v", err)
	}
	return r
}

// runCritest runs critest against d with one handler and reads its JSON report.
func runCritest(p *harness.Program, env harness.Env, d *harness.Daemon, handler, work string) suite {
	prefix := fmt.Sprintf("%s-%s", d.Version(), handler)
	jsonReport := filepath.Join(work, prefix+".json")
	logPath := filepath.Join(work, prefix+".log")
	endpoint := "unix://" + d.Address()
	args := []string{
		"-runtime-endpoint", endpoint, "-image-endpoint", endpoint, "-runtime-handler", handler,
		"-config", "/dev/null", "-ginkgo.no-color", "-ginkgo.json-report", jsonReport,
		"-ginkgo.timeout", "60m", "-test.timeout", "0",
	}
	for _, s := range skips {
		args = append(args, "-ginkgo.skip", s.re)
	}
	logf, err := os.Create(logPath)
	if err != nil {
		p.Fatalf("%v", err)
	}
	defer logf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 70*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, env.Critest, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = work, logf, logf
	start := time.Now()
	runErr := cmd.Run() // a failing spec exits 1; the report says which
	s := suite{Handler: handler, Wall: time.Since(start)}
	b, err := os.ReadFile(jsonReport)
	if err != nil {
		log, _ := os.ReadFile(logPath)
		p.Fatalf("critest --runtime-handler %s: %v, no report (%v); its output:\n%s", handler, runErr, err, tail(string(log), 60))
	}
	if err := s.parse(b); err != nil {
		p.Fatalf("critest report %s: %v", jsonReport, err)
	}
	// Keep the full output next to the report for whoever reads a failure.
	if log, err := os.ReadFile(logPath); err == nil {
		s.Log = string(log)
	}
	return s
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
