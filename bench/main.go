// Command bench measures Triage against the delegates' own shims, side by side on the same
// private containerd, in paired and interleaved runs (never absolute times from a noisy
// machine), and writes bench/RESULTS.md. Run it with `make bench`.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"

	"github.com/triage-runtime/triage/e2e/harness"
	"github.com/triage-runtime/triage/e2e/kata"
	"github.com/triage-runtime/triage/shim/delegate"
	"github.com/triage-runtime/triage/shim/front"
)

// policyTOML has a pass-through runc tier (hardening that changes nothing, so the router's
// own cost is measured against runc alone), the same runc tier with the default hardening,
// and a gVisor tier; labels pick the tier.
var policyTOML = `default_tier = "passthrough"
audit_log = "%s"

[tier.passthrough]
strength = 10
runtime = "io.containerd.runc.v2"
` + harness.PassThroughHardening("passthrough") + `
[tier.hardened]
strength = 15
runtime = "io.containerd.runc.v2"

[tier.sandboxed]
strength = 20
runtime = "io.containerd.runsc.v1"
config_path = "%s"

[[rule]]
name = "hardened-on-request"
tier = "hardened"
reason = "bench: the hardening pairs"
  [rule.match]
  labels = { "bench" = "hardened" }

[[rule]]
name = "gvisor-on-request"
tier = "sandboxed"
reason = "bench: the gVisor pairs"
  [rule.match]
  labels = { "bench" = "gvisor" }
`

type bench struct {
	p      *harness.Program
	d      *harness.Daemon
	policy string
	seq    int
	// run runs ctr against d (Kata nodes keep ctr's stdin open).
	run func(ctx context.Context, args ...string) (string, string, int, error)
}

func main() {
	out := flag.String("out", "bench/RESULTS.md", "results file")
	pairs := flag.Int("pairs", 60, "paired runs per comparison")
	rpcs := flag.Int("rpcs", 10000, "forwarded RPCs per latency sample")
	only := flag.String("only", "", "comma-separated comparisons to run (start,hardening,runsc,rpc,memory,shimd,pod,kata); all when empty")
	versions := flag.String("versions", "2,1.6", "comma-separated containerd versions (2, 1.6)")
	flag.Parse()
	want := func(name string) bool { return *only == "" || slices.Contains(strings.Split(*only, ","), name) }
	p := &harness.Program{}
	defer p.Close()
	env, bin := harness.ProgramEnv(p, "bench")

	var report strings.Builder
	fmt.Fprintf(&report, "# Benchmarks\n\nProduced by `make bench` (`go run ./bench -pairs %d -rpcs %d`) on %s; %s.\n",
		*pairs, *rpcs, time.Now().UTC().Format("2006-01-02 15:04 UTC"), machine())
	if *only != "" || *versions != "2,1.6" {
		fmt.Fprintf(&report, "Only: `-only %q -versions %q`.\n", *only, *versions)
	}
	report.WriteString("Every comparison runs both sides on the same private containerd, interleaved in pairs\n" +
		"(the order alternates each pair), and reports the median of the per-pair ratios.\n\n")
	for _, name := range strings.Split(*versions, ",") {
		v := map[string]harness.Version{"2": harness.V2, "1.6": harness.V16}[name]
		if v == 0 {
			p.Fatalf("-versions: unknown containerd version %q (2 or 1.6)", name)
		}
		b := newBench(p, env, bin, v)
		fmt.Fprintf(&report, "## %v\n\n", v)
		report.WriteString("| comparison (A / B) | A median | B median | median ratio A/B | target |\n|---|---|---|---|---|\n")
		triage := b.triageArgs()
		if want("start") {
			b.startToExit(&report, "`ctr run --rm … true`: Triage→runc (pass-through hardening) / runc shim", *pairs,
				triage, []string{"--runtime", "io.containerd.runc.v2"}, "≤ 1.05")
		}
		if want("hardening") {
			b.startToExit(&report, "cost of the default hardening: Triage→runc hardened / Triage→runc pass-through", *pairs,
				append(b.triageArgs(), "--label", "bench=hardened"), triage, "(reported)")
		}
		if want("runsc") {
			b.startToExit(&report, "`ctr run --rm … true`: Triage→runsc (default hardening) / runsc shim (systrap)", *pairs/2,
				append(b.triageArgs(), "--label", "bench=gvisor"),
				[]string{"--runtime", "io.containerd.runsc.v1", "--runtime-config-path", b.d.RunscConfig(),
					"--annotation", "io.kubernetes.cri.container-type=sandbox"}, "≤ 1.05")
		}
		if want("rpc") {
			b.rpcLatency(&report, *rpcs)
		}
		if want("memory") {
			b.memory(&report)
		}
		if want("shimd") {
			b.inCall(&report, newBench(p, env, bin, v, front.DaemonEnv+"=off"), *pairs/2)
		}
		if want("pod") {
			// A pod start's ratio swings more than a `ctr run`'s: as many pairs.
			b.podStart(&report, *pairs, 20)
		}
		p.Close()
		if want("kata") {
			k := newKataBench(p, env, bin, v)
			k.startToExit(&report, "`ctr run --rm … true`: Triage→Kata (default hardening) / Kata shim (fake VM: Kata's remote hypervisor + fakevm)", *pairs/2,
				k.triageArgs(), k.kataDirect, "≤ 1.05")
			p.Close()
		}
		report.WriteString("\n")
	}
	if err := os.WriteFile(*out, []byte(report.String()), 0o644); err != nil {
		p.Fatalf("%v", err)
	}
	fmt.Print(report.String())
}

func machine() string {
	out, _ := exec.Command("nproc").Output()
	return strings.TrimSpace(string(out)) + " cores, " + strings.TrimSpace(firstLine("/etc/debian_version", "Debian"))
}

func firstLine(path, prefix string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return prefix + " " + strings.SplitN(string(b), "\n", 2)[0]
}

// newBench starts containerd v with Triage; daemonEnv is added to containerd's environment.
func newBench(p *harness.Program, env harness.Env, bin string, v harness.Version, daemonEnv ...string) *bench {
	dir, err := os.MkdirTemp("", "triage-bench")
	if err != nil {
		p.Fatalf("%v", err)
	}
	p.Cleanup(func() { os.RemoveAll(dir) })
	b := &bench{p: p, policy: filepath.Join(dir, "policy.toml")}
	b.d = harness.StartContainerd(p, env, v, harness.Options{ExtraPath: []string{bin}, Env: daemonEnv,
		Runtimes: []harness.Runtime{harness.TriageRuntime(p, bin, v, b.policy)}})
	b.run = b.d.Ctr
	pol := fmt.Sprintf(policyTOML, filepath.Join(dir, "decisions.jsonl"), b.d.RunscConfig())
	if err := os.WriteFile(b.policy, []byte(pol), 0o644); err != nil {
		p.Fatalf("%v", err)
	}
	return b
}

// kataBench is a bench on a node that runs the real Kata shim with a fake VM.
type kataBench struct {
	*bench
	kataDirect []string
}

func newKataBench(p *harness.Program, env harness.Env, bin string, v harness.Version) kataBench {
	dir, err := os.MkdirTemp("", "triage-bench")
	if err != nil {
		p.Fatalf("%v", err)
	}
	p.Cleanup(func() { os.RemoveAll(dir) })
	n := kata.StartNode(p, env, v, harness.Options{ExtraPath: []string{bin}})
	b := &bench{p: p, d: n.Daemon, policy: filepath.Join(dir, "policy.toml"), run: n.Ctr}
	pol := fmt.Sprintf("default_tier = \"isolated\"\naudit_log = %q\n\n[tier.isolated]\nstrength = 30\nruntime = \"io.containerd.kata.v2\"\nconfig_path = %q\n",
		filepath.Join(dir, "decisions.jsonl"), n.ConfigPath)
	if err := os.WriteFile(b.policy, []byte(pol), 0o644); err != nil {
		p.Fatalf("%v", err)
	}
	return kataBench{bench: b, kataDirect: n.DirectArgs()}
}

func (b *bench) ctr(args ...string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	_, stderr, code, err := b.run(ctx, args...)
	el := time.Since(start)
	if err != nil {
		return 0, err
	}
	if code != 0 && !strings.Contains(strings.Join(args, " "), "runsc") && !strings.Contains(strings.Join(args, " "), "bench=gvisor") {
		return 0, fmt.Errorf("ctr %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
	return el, nil
}

func (b *bench) id() string {
	b.seq++
	return b.d.ID("b" + strconv.Itoa(b.seq))
}

func (b *bench) runOnce(runtimeArgs []string) time.Duration {
	args := append(append([]string{"run", "--rm"}, runtimeArgs...), harness.BusyboxImage, b.id(), "true")
	el, err := b.ctr(args...)
	if err != nil {
		b.p.Fatalf("%v", err)
	}
	return el
}

// triageArgs are `ctr run` flags that route through Triage with the bench policy.
func (b *bench) triageArgs() []string {
	return []string{"--runtime", "io.containerd.triage.v2", "--runtime-config-path", b.policy}
}

// startToExit times `ctr run --rm … true` with the triage flags and the direct ones, in
// alternating pairs.
func (b *bench) startToExit(w *strings.Builder, name string, pairs int, triage, direct []string, target string) {
	b.runOnce(triage) // warm both paths (page cache, first-run setup)
	b.runOnce(direct)
	var p paired
	for i := range pairs {
		var t, d time.Duration
		if i%2 == 0 {
			t, d = b.runOnce(triage), b.runOnce(direct)
		} else {
			d, t = b.runOnce(direct), b.runOnce(triage)
		}
		p.add(ms(t), ms(d))
	}
	fmt.Fprintf(w, "| %s (%d pairs; %s) | %.1f ms | %.1f ms | **%.3f** | %s |\n", name, pairs, spread(p.ratios), median(p.a), median(p.b), median(p.ratios), target)
}

// rpcLatency times State on a running container: one in a runc-tier pod, served by
// Triage's pod shim, and one in runc's own shim, interleaved.
func (b *bench) rpcLatency(w *strings.Builder, n int) {
	ctx := context.Background()
	type shim struct {
		c   *delegate.Client
		req *taskv2.StateRequest
	}
	var cleanups []func()
	defer func() {
		for _, f := range cleanups {
			f()
		}
	}()
	dial := func(runtime ...string) shim {
		id := b.id()
		args := append(append([]string{"run", "-d"}, runtime...), harness.BusyboxImage, id, "sleep", "600")
		if _, err := b.ctr(args...); err != nil {
			b.p.Fatalf("%v", err)
		}
		cleanups = append(cleanups, func() {
			b.ctr("task", "kill", "-s", "SIGKILL", id)
			time.Sleep(300 * time.Millisecond)
			b.ctr("task", "delete", id)
			b.ctr("container", "delete", id)
		})
		addr, err := shimAddress(filepath.Join(b.d.State(), "io.containerd.runtime.v2.task", "default", id))
		if err != nil {
			b.p.Fatalf("%v", err)
		}
		// The task API version containerd speaks: runc's shim in 2.x serves only v3.
		version := 3
		if b.d.Version() == harness.V16 {
			version = 2
		}
		c, err := delegate.Dial(ctx, addr, version, func() {})
		if err != nil {
			b.p.Fatalf("%v", err)
		}
		cleanups = append([]func(){func() { c.Close() }}, cleanups...)
		return shim{c, &taskv2.StateRequest{ID: id}}
	}
	router := dial(b.triageArgs()...)
	direct := dial("--runtime", "io.containerd.runc.v2")
	time1 := func(s shim) float64 {
		t0 := time.Now()
		if _, err := s.c.State(ctx, s.req); err != nil {
			b.p.Fatalf("State: %v", err)
		}
		return float64(time.Since(t0).Microseconds())
	}
	// Both connections and the processes behind them warm up first: the
	// figure is the steady state a long-lived pod sees.
	for range n / 10 {
		time1(router)
		time1(direct)
	}
	var tr, dr []float64
	for i := range n {
		if i%2 == 0 {
			tr, dr = append(tr, time1(router)), append(dr, time1(direct))
		} else {
			dr, tr = append(dr, time1(direct)), append(tr, time1(router))
		}
	}
	added := median(tr) - median(dr)
	fmt.Fprintf(w, "| State RPC (%d pairs), runc pod: Triage's pod shim / runc's shim, added latency | %.0f µs | %.0f µs | **+%.0f µs** | ≤ +5 µs |\n", n, median(tr), median(dr), added)
}

// shimAddress is the address containerd holds for the bundle's shim (Triage's router):
// in bootstrap.json from containerd 2.x on, in ./address before.
func shimAddress(bundle string) (string, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "bootstrap.json"))
	if errors.Is(err, os.ErrNotExist) {
		b, err = os.ReadFile(filepath.Join(bundle, "address"))
		return strings.TrimSpace(string(b)), err
	}
	if err != nil {
		return "", err
	}
	var params struct{ Address string }
	if err := json.Unmarshal(b, &params); err != nil {
		return "", fmt.Errorf("%s: %w", filepath.Join(bundle, "bootstrap.json"), err)
	}
	return params.Address, nil
}

// memory compares the memory per pod of Triage's runc tier with runc's own shim's: every
// process of the pod (Triage's pod shim, and any delegate shim started for it) against
// containerd-shim-runc-v2. Private memory (Private_Clean + Private_Dirty) is what each
// pod adds; RSS also counts the binary's pages that the pods share.
func (b *bench) memory(w *strings.Builder) {
	const pods = 5
	run := func(runtime ...string) map[string]bool {
		ids := map[string]bool{}
		for range pods {
			id := b.id()
			args := append(append([]string{"run", "-d"}, runtime...), harness.BusyboxImage, id, "sleep", "600")
			if _, err := b.ctr(args...); err != nil {
				b.p.Fatalf("%v", err)
			}
			ids[id] = true
		}
		return ids
	}
	triage := run(b.triageArgs()...)
	runc := run("--runtime", "io.containerd.runc.v2")
	time.Sleep(500 * time.Millisecond)
	type usage struct{ rss, private float64 }
	perPod := map[string]*usage{}
	var nodeRSS []float64
	for _, p := range procs(b.d.Address()) {
		if strings.Contains(p.cmd, "triage-shimd serve") {
			nodeRSS = append(nodeRSS, memMiB(p.pid, "status", "VmRSS:"))
			continue
		}
		id := flagValue(p.cmd, "-id")
		if !triage[id] && !runc[id] {
			continue
		}
		u := perPod[id]
		if u == nil {
			u = &usage{}
			perPod[id] = u
		}
		u.rss += memMiB(p.pid, "status", "VmRSS:")
		u.private += memMiB(p.pid, "smaps_rollup", "Private_Clean:") + memMiB(p.pid, "smaps_rollup", "Private_Dirty:")
	}
	var tRSS, tPriv, rRSS, rPriv []float64
	for id, u := range perPod {
		if triage[id] {
			tRSS, tPriv = append(tRSS, u.rss), append(tPriv, u.private)
		} else {
			rRSS, rPriv = append(rRSS, u.rss), append(rPriv, u.private)
		}
	}
	fmt.Fprintf(w, "| memory per runc pod (%d pods each), VmRSS of all its processes: Triage / containerd-shim-runc-v2 | %.1f MiB | %.1f MiB | **%.2f** | ≤ 1.05 |\n",
		pods, median(tRSS), median(rRSS), median(tRSS)/median(rRSS))
	fmt.Fprintf(w, "| memory per runc pod, private (what each pod adds): Triage / containerd-shim-runc-v2 | %.2f MiB | %.2f MiB | **%.2f** | ≤ 1.10 |\n",
		median(tPriv), median(rPriv), median(tPriv)/median(rPriv))
	if len(nodeRSS) == 1 {
		fmt.Fprintf(w, "| memory per node (one per containerd, not per pod), VmRSS: triage-shimd | %.1f MiB | | | (reported; its collector runs at 32 MiB) |\n", nodeRSS[0])
	} else {
		fmt.Fprintf(w, "| memory per node: %d triage-shimd serve processes found, want 1 | | | | |\n", len(nodeRSS))
	}
	for id := range perPod {
		b.ctr("task", "kill", "-s", "SIGKILL", id)
	}
	time.Sleep(500 * time.Millisecond)
	for _, ids := range []map[string]bool{triage, runc} {
		for id := range ids {
			b.ctr("task", "delete", id)
			b.ctr("container", "delete", id)
		}
	}
}

// flagValue is the value after flag in a command line of space-separated words.
func flagValue(cmd, flag string) string {
	f := strings.Fields(cmd)
	if i := slices.Index(f, flag); i >= 0 && i+1 < len(f) {
		return f[i+1]
	}
	return ""
}

// podStart times a CRI pod start (runp, create, start of one container) with the triage
// handler against the runc handler: serially in alternating pairs, then batches of `batch`
// pods started at once, alternating handlers.
func (b *bench) podStart(w *strings.Builder, pairs, batch int) {
	dir, err := os.MkdirTemp("", "triage-bench-pods")
	if err != nil {
		b.p.Fatalf("%v", err)
	}
	defer os.RemoveAll(dir)
	var started []string
	// start returns how long the pod's runp took and then its container's create and
	// start: the pod's first `start` (shim start, delegate start, the router) against
	// a container joining a running pod.
	start := func(handler string) (runp, join time.Duration) {
		podFile, ctrFile := podConfig(dir, b.id())
		t0 := time.Now()
		podID := b.crictl("runp", "--runtime", handler, podFile)
		t1 := time.Now()
		b.crictl("start", b.crictl("create", podID, ctrFile, podFile))
		started = append(started, podID)
		return t1.Sub(t0), time.Since(t1)
	}
	cleanup := func() {
		for _, id := range started {
			b.crictl("stopp", id)
			b.crictl("rmp", id)
		}
		started = nil
	}
	start("triage") // warm both handlers
	start("runc")
	cleanup()
	var whole, runp, join paired
	for i := range pairs {
		var tp, tj, dp, dj time.Duration
		if i%2 == 0 {
			tp, tj = start("triage")
			dp, dj = start("runc")
		} else {
			dp, dj = start("runc")
			tp, tj = start("triage")
		}
		cleanup()
		whole.add(ms(tp+tj), ms(dp+dj))
		runp.add(ms(tp), ms(dp))
		join.add(ms(tj), ms(dj))
	}
	fmt.Fprintf(w, "| CRI pod start (runp + create + start), serial (%d pairs; %s): handler triage / runc | %.0f ms | %.0f ms | **%.3f** | ≤ 1.05 |\n", pairs, spread(whole.ratios), median(whole.a), median(whole.b), median(whole.ratios))
	for _, part := range []struct {
		name string
		p    paired
	}{{"its `runp` (the pod's shim start, delegate start and router)", runp}, {"its `create` + `start` (the container joins the running pod)", join}} {
		fmt.Fprintf(w, "| … of which %s (%s) | %.0f ms | %.0f ms | %.3f | |\n", part.name, spread(part.p.ratios), median(part.p.a), median(part.p.b), median(part.p.ratios))
	}
	// A batch keeps both cores busy: its time follows the CPU its pods take, which
	// /proc/stat gives for the whole machine (the bench's own crictl calls included).
	// It also gives the CPU of the pods' whole life: their start, then their stop and
	// removal, and what exits after (teardownSettle).
	parallel := func(handler string) (el, startCPU, lifeCPU time.Duration) {
		cpu0 := machineCPU(b.p)
		t0 := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		for range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				mu.Lock()
				podFile, ctrFile := podConfig(dir, b.id())
				mu.Unlock()
				podID := b.crictl("runp", "--runtime", handler, podFile)
				b.crictl("start", b.crictl("create", podID, ctrFile, podFile))
				mu.Lock()
				started = append(started, podID)
				mu.Unlock()
			}()
		}
		wg.Wait()
		el, startCPU = time.Since(t0), machineCPU(b.p)-cpu0
		cleanup()
		time.Sleep(teardownSettle)
		return el, startCPU, machineCPU(b.p) - cpu0
	}
	// A batch's time swings by 10% from one to the next here, and a whole run's median
	// of six pairs by as much between runs: ten pairs, with the median's interval.
	const batchPairs = 10
	var times, cpu, life paired
	for i := range batchPairs {
		var t, d, tc, dc, tl, dl time.Duration
		if i%2 == 0 {
			t, tc, tl = parallel("triage")
			d, dc, dl = parallel("runc")
		} else {
			d, dc, dl = parallel("runc")
			t, tc, tl = parallel("triage")
		}
		times.add(ms(t), ms(d))
		cpu.add(ms(tc)/float64(batch), ms(dc)/float64(batch))
		life.add(ms(tl)/float64(batch), ms(dl)/float64(batch))
	}
	fmt.Fprintf(w, "| CRI pod start, %d pods at once (%d batch pairs, time until all run; %s): handler triage / runc | %.0f ms | %.0f ms | **%.3f** | ≤ 1.05 |\n", batch, batchPairs, spread(times.ratios), median(times.a), median(times.b), median(times.ratios))
	fmt.Fprintf(w, "| CPU per pod in those batches (the whole machine's, from /proc/stat; %s): handler triage / runc | %.0f ms | %.0f ms | %.3f | |\n", spread(cpu.ratios), median(cpu.a), median(cpu.b), median(cpu.ratios))
	fmt.Fprintf(w, "| CPU per pod over its whole life (start, stop, remove; the whole machine's; %s): handler triage / runc | %.0f ms | %.0f ms | %.3f | |\n", spread(life.ratios), median(life.a), median(life.b), median(life.ratios))
}

// inCall compares Triage's start through triage-shimd (on b) with the same start run in
// the front's own process (`triage-shimd run`, on off, whose containerd has
// TRIAGE_SHIMD=off), on two containerds of the same version, in alternating pairs: what
// the node daemon buys.
func (b *bench) inCall(w *strings.Builder, off *bench, pairs int) {
	dir, err := os.MkdirTemp("", "triage-bench-pods")
	if err != nil {
		b.p.Fatalf("%v", err)
	}
	defer os.RemoveAll(dir)
	pod := func(x *bench) time.Duration {
		podFile, ctrFile := podConfig(dir, x.id())
		t0 := time.Now()
		podID := x.crictl("runp", "--runtime", "triage", podFile)
		x.crictl("start", x.crictl("create", podID, ctrFile, podFile))
		el := time.Since(t0)
		x.crictl("stopp", podID)
		x.crictl("rmp", podID)
		return el
	}
	b.runOnce(b.triageArgs()) // warm both
	off.runOnce(off.triageArgs())
	pod(b)
	pod(off)
	var run, pods paired
	for i := range pairs {
		var d, o, dp, op time.Duration
		if i%2 == 0 {
			d, o = b.runOnce(b.triageArgs()), off.runOnce(off.triageArgs())
			dp, op = pod(b), pod(off)
		} else {
			o, d = off.runOnce(off.triageArgs()), b.runOnce(b.triageArgs())
			op, dp = pod(off), pod(b)
		}
		run.add(ms(d), ms(o))
		pods.add(ms(dp), ms(op))
	}
	fmt.Fprintf(w, "| `ctr run --rm … true` (%d pairs; %s): through triage-shimd / in the front's process | %.1f ms | %.1f ms | **%.3f** | keep the daemon below 0.98 |\n", pairs, spread(run.ratios), median(run.a), median(run.b), median(run.ratios))
	fmt.Fprintf(w, "| CRI pod start, serial (%d pairs; %s): through triage-shimd / in the front's process | %.0f ms | %.0f ms | **%.3f** | keep the daemon below 0.98 |\n", pairs, spread(pods.ratios), median(pods.a), median(pods.b), median(pods.ratios))
}

// teardownSettle is how long a batch's CPU count waits after its pods were removed: shims
// and the router exit once containerd shut them down, after `crictl rmp` returned.
const teardownSettle = 2 * time.Second

// machineCPU is the CPU time the machine has spent busy since boot (user, nice and system).
func machineCPU(p *harness.Program) time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		p.Fatalf("%v", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle …
	var ticks int64
	for _, x := range f[1:4] {
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			p.Fatalf("/proc/stat: %q: %v", line, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ
}

// userHZ is the unit of /proc/stat's times (USER_HZ, 100 on Linux).
const userHZ = 100

// podConfig writes crictl configs for a pod named name running one `sleep` container.
func podConfig(dir, name string) (podFile, ctrFile string) {
	podFile, ctrFile = filepath.Join(dir, name+".pod.json"), filepath.Join(dir, name+".ctr.json")
	os.WriteFile(podFile, []byte(fmt.Sprintf(`{"metadata":{"name":%q,"namespace":"bench","uid":%q},"log_directory":%q}`, name, name, filepath.Join(dir, name))), 0o644)
	os.WriteFile(ctrFile, []byte(fmt.Sprintf(`{"metadata":{"name":"c"},"image":{"image":%q},"command":["sleep","600"],"log_path":"c.log"}`, harness.BusyboxImage)), 0o644)
	return podFile, ctrFile
}

func (b *bench) crictl(args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, stderr, code, err := b.d.Crictl(ctx, args...)
	if err != nil || code != 0 {
		b.p.Fatalf("crictl %s: exit %d: %v %s", strings.Join(args, " "), code, err, stderr)
	}
	return strings.TrimSpace(out)
}

type proc struct {
	pid int
	cmd string
}

// procs lists the processes whose command line names the containerd address.
func procs(address string) []proc {
	var out []proc
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(b), address) {
			continue
		}
		out = append(out, proc{pid, strings.ReplaceAll(string(b), "\x00", " ")})
	}
	return out
}

// memMiB reads a "Key: N kB" line of /proc/pid/file.
func memMiB(pid int, file, key string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == key {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// spread names the middle half of the per-pair ratios, which shows how far one run's
// median can be trusted on a noisy machine.
func spread(ratios []float64) string {
	s := slices.Clone(ratios)
	slices.Sort(s)
	if len(s) < 4 {
		return "too few pairs for a spread"
	}
	lo, hi := medianCI(ratios)
	return fmt.Sprintf("middle half of the ratios %.2f–%.2f; 95%% interval of the median %.3f–%.3f", s[len(s)/4], s[len(s)*3/4], lo, hi)
}

// medianCI is a 95% percentile-bootstrap interval of the median of xs: where the
// median would land if the run were repeated on a machine as noisy as this one.
// The seed is fixed, so a report's interval follows from its samples alone.
func medianCI(xs []float64) (lo, hi float64) {
	const resamples = 4000
	rng := rand.New(rand.NewPCG(1, uint64(len(xs))))
	meds := make([]float64, resamples)
	sample := make([]float64, len(xs))
	for i := range meds {
		for j := range sample {
			sample[j] = xs[rng.IntN(len(xs))]
		}
		meds[i] = median(sample)
	}
	slices.Sort(meds)
	return meds[resamples*25/1000], meds[resamples*975/1000-1]
}

// paired holds paired measurements of A (Triage) and B (the delegate alone), with each
// pair's ratio A/B.
type paired struct{ a, b, ratios []float64 }

func (p *paired) add(a, b float64) {
	p.a, p.b = append(p.a, a), append(p.b, b)
	p.ratios = append(p.ratios, a/b)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
