package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	bootstrap "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/triage-runtime/triage/classifier"
	"github.com/triage-runtime/triage/hardening"
	"github.com/triage-runtime/triage/node"
	"github.com/triage-runtime/triage/policy"
	"github.com/triage-runtime/triage/shim/delegate"
	"github.com/triage-runtime/triage/shim/front"
	"github.com/triage-runtime/triage/shim/proc"
	"github.com/triage-runtime/triage/shim/router"
	"github.com/triage-runtime/triage/shim/state"
)

const (
	// DecisionAnnotation carries Triage's decision (JSON) in the spec the
	// delegate runs.
	DecisionAnnotation = "triage.io/decision"

	annotationSandboxID  = "io.kubernetes.cri.sandbox-id"
	annotationSandboxUID = "io.kubernetes.cri.sandbox-uid"
	annotationRuncGroup  = "io.containerd.runc.v2.group"
)

// ErrTierUnrunnable: the tier a workload needs cannot run on this node, and no stronger
// fallback can.
var ErrTierUnrunnable = errors.New("cannot run on this node")

// place finds where a run decision runs on this node: its tier, or, when the
// tier cannot run here and the policy names a fallback (always stronger),
// the fallback. It returns the tier, its delegate shim binary and the
// decision as amended. A deny decision is returned as it is.
func place(ctx context.Context, pol *policy.Policy, d classifier.Decision, publishBinary string) (*policy.Tier, string, classifier.Decision, error) {
	if d.Action != classifier.ActionRun {
		return nil, "", d, nil
	}
	tier, ok := pol.Tier(d.Tier)
	if !ok {
		return nil, "", d, fmt.Errorf("decision names tier %q, which %s does not define", d.Tier, pol.Source)
	}
	for range pol.Tiers {
		binary, err := runnable(tier, publishBinary)
		if err == nil {
			return tier, binary, d, nil
		}
		if tier.Fallback == "" {
			return nil, "", d, fmt.Errorf("tier %q %w: %w; fix the node (see `triage doctor`) or set a stronger fallback tier for %q in %s", tier.Name, ErrTierUnrunnable, err, tier.Name, pol.Source)
		}
		fb, _ := pol.Tier(tier.Fallback)
		log.G(ctx).WithError(err).WithFields(log.Fields{"tier": tier.Name, "fallback": fb.Name}).Warn("tier cannot run on this node: falling back to a stronger tier")
		d.Reason += fmt.Sprintf("; tier %q cannot run on this node (%v): runs in its fallback %q", tier.Name, err, fb.Name)
		d.Tier, d.Runtime, tier = fb.Name, fb.Runtime, fb
	}
	return nil, "", d, fmt.Errorf("the fallbacks of tier %q loop in %s", d.Tier, pol.Source)
}

// requestedCapabilities is the bounding set the container asked for, before
// hardening; never nil, so an exec is judged against it.
func requestedCapabilities(spec *specs.Spec) []string {
	caps := []string{}
	if spec.Process != nil && spec.Process.Capabilities != nil {
		caps = append(caps, spec.Process.Capabilities.Bounding...)
	}
	return caps
}

// podOf returns the group key of a container: its CRI sandbox, else its runc
// group, else itself. The key names the pod's state folder, so a key from an
// annotation (which anyone who runs the container may set) must be a
// containerd identifier, as the id is: "../../etc" would name another folder.
func podOf(spec *specs.Spec, id string) (string, error) {
	for _, k := range []string{annotationSandboxID, annotationRuncGroup} {
		if v := spec.Annotations[k]; v != "" {
			if err := identifiers.Validate(v); err != nil {
				return "", fmt.Errorf("annotation %s: %w: give a containerd identifier (letters, digits, '.', '_' and '-')", k, err)
			}
			return v, nil
		}
	}
	return id, nil
}

// readSpec reads the OCI spec of bundle, with its fields this Triage does not know.
func readSpec(bundle string) (*specs.Spec, []string, error) {
	path := filepath.Join(bundle, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	spec, unknown, err := classifier.DecodeSpec(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return spec, unknown, nil
}

// resolve reads what the spec's host-touching fields reach on this node. The folders of
// containerd's and Triage's own are sensitive; the CRI plugin's and the kubelet's folders
// of the container's own pod are not, when the CRI plugin made the container.
func resolve(spec *specs.Spec, f flags, pol *policy.Policy, cri bool) *classifier.Reach {
	var sandbox, podUID string
	if cri {
		sandbox = spec.Annotations[annotationSandboxID]
		if uid := spec.Annotations[annotationSandboxUID]; identifiers.Validate(uid) == nil {
			podUID = uid
		}
	}
	return node.Host.Resolve(spec, node.Workload{
		Bundle:    f.dir,
		ID:        f.id,
		Sensitive: node.Sensitive(state.Root, pol.Source, pol.AuditLog, f.dir, f.address),
		SandboxID: sandbox,
		PodUID:    podUID,
	})
}

// podLives tells whether a pod with a decision still has a container that containerd
// knows: a member other than this one with a bundle beside this container's. A start
// that died half-way (its process killed) can leave a decision, and members, that no
// container backs: such a pod is stale, and its state is cleared (stale lists its
// members), so that the container starting now is classified afresh rather than by what
// a dead start decided.
func podLives(pod *state.Pod, bundle string) (lives bool, stale []string, err error) {
	members, err := pod.Members()
	if err != nil {
		return false, nil, err
	}
	self := filepath.Base(bundle)
	for _, id := range members {
		if id == self {
			continue
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(bundle), id)); err == nil {
			return true, nil, nil
		}
	}
	return false, members, pod.Clear()
}

// delegateFailed names the delegate whose start failed. One found next to containerd
// rather than on its PATH may be another containerd release's, which does not read this
// release's start input (containerd 2.3+ sends BootstrapParams, which a 1.x shim misreads
// as options "of type" the container's id): say so, with the fix.
func delegateFailed(t *policy.Tier, binary, publishBinary string, err error) error {
	err = fmt.Errorf("tier %q: delegate %s: %w", t.Name, binary, err)
	onPath, _ := exec.LookPath(filepath.Base(binary))
	if t.ShimPath == "" && publishBinary != "" && filepath.Dir(binary) == filepath.Dir(publishBinary) && onPath == "" {
		err = fmt.Errorf("%w (it is not on containerd's PATH; Triage took the copy next to containerd, which may belong to another containerd release: install this release's %s on containerd's PATH, or set shim_path for the tier)", err, filepath.Base(binary))
	}
	return err
}

// wouldHarden records, in a decision in audit mode that would run the workload in
// another tier, whether that tier's hardening would refuse it.
func wouldHarden(pol *policy.Policy, d classifier.Decision, spec *specs.Spec, id string, facts classifier.Facts) classifier.Decision {
	if d.Would == nil || d.Would.Action != classifier.ActionRun {
		return d
	}
	wt, ok := pol.Tier(d.Would.Tier)
	if !ok {
		return d
	}
	return d.WouldBeRefused(hardening.Preview(spec, wt, node.Host.HardeningHost(wt, id, facts.Reach, facts.UnknownFields)))
}

// refuseUnclassified audits a start refused before the workload could be classified (its
// spec cannot be read, its pod's name is not an identifier) and returns the denial and
// why.
func refuseUnclassified(pol *policy.Policy, f flags, cause error) (classifier.Decision, error) {
	d := classifier.Decision{Action: classifier.ActionDeny, Rule: classifier.RuleInvalidSpec, Reason: classifier.Bound(cause.Error()), Findings: []classifier.Finding{}}
	if err := audit(pol.AuditLog, f, f.id, classifier.Facts{}, d, nil); err != nil {
		return d, err
	}
	return d, cause
}

// start classifies the container, starts its tier's delegate and makes sure a
// router serves its pod. It returns the router's address. On failure nothing
// it started or wrote is left behind.
func start(ctx context.Context, f flags, stdin []byte) (_ string, retErr error) {
	began := time.Now()
	var (
		pol     *policy.Policy
		decided classifier.Decision // the audited decision, once made
	)
	defer func() { recordStart(ctx, pol, decided, retErr, time.Since(began)) }()
	bundle := f.dir
	// Reading containerd's records is a round trip: overlap it with
	// loading the policy and the spec.
	type factsResult struct {
		facts classifier.Facts
		err   error
	}
	fetched := make(chan factsResult, 1)
	go func() {
		facts, err := gatherFacts(ctx, f)
		fetched <- factsResult{facts, err}
	}()
	in, err := parseStartInput(stdin, f)
	if err != nil {
		return "", err
	}
	// The policy loads (in triage-shimd, from its cache) while the spec is read.
	type policyResult struct {
		pol *policy.Policy
		err error
	}
	loaded := make(chan policyResult, 1)
	go func() {
		pol, err := loadPolicy(in.options, f.env)
		loaded <- policyResult{pol, err}
	}()
	spec, unknown, specErr := readSpec(bundle)
	lp := <-loaded
	if lp.err != nil {
		return "", lp.err
	}
	pol = lp.pol
	if specErr != nil {
		decided, err = refuseUnclassified(pol, f, specErr)
		return "", err
	}
	podID, err := podOf(spec, f.id)
	if err != nil {
		decided, err = refuseUnclassified(pol, f, err)
		return "", err
	}

	pod, err := state.LockPod(f.address, f.namespace, podID)
	if err != nil {
		return "", err
	}
	var podDecision classifier.Decision
	member, err := pod.Decision(&podDecision)
	if err == nil && member {
		var stale []string
		if member, stale, err = podLives(pod, bundle); err == nil && !member {
			endStalePod(ctx, f, podID, stale, in.params.GetSocketDir())
		}
	} else if err == nil {
		endLeftDelegate(ctx, f)
	}
	if err != nil {
		pod.Unlock()
		return "", err
	}
	defer func() {
		if retErr != nil && !member {
			pod.Remove()
			return
		}
		pod.Unlock()
	}()

	r := <-fetched
	if r.err != nil {
		return "", r.err
	}
	facts := r.facts
	if facts.Image != "" && pol.UsesImageDigest() {
		if facts.ImageDigest, err = imageDigest(ctx, f, facts.Image); err != nil {
			return "", err
		}
	}
	facts.ID, facts.Spec = f.id, spec
	facts.UnknownFields = unknown
	facts.Reach = resolve(spec, f, pol, facts.CRI)
	var d classifier.Decision
	if member {
		d = classifier.CheckMember(pol, podDecision, facts)
	} else {
		d = classifier.Classify(pol, facts)
	}
	requested := requestedCapabilities(spec)
	// runc's group key, read before hardening strips its annotation.
	group := runcGroup(spec, f.id)
	tier, binary, d, err := place(ctx, pol, d, f.publishBinary)
	var controls []hardening.Control
	if err == nil && tier != nil {
		d = wouldHarden(pol, d, spec, f.id, facts)
		controls, err = hardening.Apply(spec, tier, node.Host.HardeningHost(tier, f.id, facts.Reach, facts.UnknownFields))
	}
	if err != nil {
		// A tier that cannot run here, or refuses the workload, is a denial too: audit it.
		d = classifier.Decision{Action: classifier.ActionDeny, Rule: classifier.RulePlacement, Reason: err.Error(), Findings: d.Findings}
	}
	decided = d
	if aerr := audit(pol.AuditLog, f, podID, facts, d, controls); aerr != nil {
		return "", aerr
	}
	if err != nil {
		return "", err
	}
	if err := d.Err(); err != nil {
		return "", err
	}
	optsAny, input, err := delegateInput(tier, in)
	if err != nil {
		return "", err
	}
	hardened, err := hardenedSpec(spec, tier, f.id, d)
	if err != nil {
		return "", err
	}
	if err := state.WriteFileInPlace(filepath.Join(bundle, "config.json"), hardened, 0o644); err != nil {
		return "", err
	}
	rules := hardening.ExecRules(tier)
	rules.Requested = requested
	marker := state.Container{Pod: podID, Exec: rules, Delegate: state.Delegate{Runtime: tier.Runtime, Binary: binary, Hosted: tier.Hosted()}, Metrics: pol.MetricsTextfile}
	if optsAny != nil {
		marker.Delegate.Options, marker.Delegate.OptionsType = optsAny.GetValue(), optsAny.GetTypeUrl()
	}
	var pending *delegate.Pending
	switch {
	case marker.Delegate.Hosted && member && !podHosted(pod, bundle):
		// A pod an earlier Triage started, whose router relays to runc's shim.
		reply, ok := groupDelegate(bundle, group, pod, podID, optsAny.GetValue())
		if !ok {
			return "", fmt.Errorf("pod %s was started by an earlier Triage, and its runc shim is gone or serves another group: recreate the pod: %w", podID, errdefs.ErrFailedPrecondition)
		}
		marker.Delegate = reply
	case !marker.Delegate.Hosted:
		inv := delegate.Invocation{
			Binary: binary, Namespace: f.namespace, Address: f.address, PublishBinary: f.publishBinary,
			ID: f.id, Bundle: bundle, Debug: f.debug, Env: f.env, Procs: f.procs,
		}
		if pending, err = inv.Spawn(ctx, input); err != nil {
			return "", delegateFailed(tier, binary, f.publishBinary, err)
		}
	}
	sock := routerSocket(f.address, f.namespace, podID)
	addr := "unix://" + sock
	l, existing, err := listenRouter(sock)
	if err != nil {
		abandon(ctx, pending, f.id)
		return "", err
	}
	if !existing {
		// Start the router now: it initialises while the delegate starts.
		routerProc, err := spawnRouter(f, podID, bundle, in.params.GetSocketDir(), marker.Delegate.Hosted, l)
		l.Close()
		if err != nil {
			os.Remove(sock)
			abandon(ctx, pending, f.id)
			return "", err
		}
		defer func() {
			if retErr != nil {
				routerProc.Kill()
				routerProc.Wait()
				os.Remove(sock)
			}
		}()
	}
	// While the delegate starts, what needs no reply: the pod's decision
	// and the marker's inode.
	if err := prepareRecord(bundle, pod, d, member); err != nil {
		abandon(ctx, pending, f.id)
		return "", err
	}
	if pending != nil {
		reply, err := pending.Reply()
		if err != nil {
			return "", delegateFailed(tier, binary, f.publishBinary, err)
		}
		defer func() {
			if retErr != nil {
				shutdownDelegate(ctx, reply, f.id)
			}
		}()
		marker.Delegate.Address, marker.Delegate.Version = reply.Address, reply.Version
	}
	if err := state.WriteContainer(bundle, marker); err != nil {
		return "", err
	}
	if err := pod.AddMember(f.id); err != nil {
		return "", err
	}
	if err := writeAddress(bundle, addr, in); err != nil {
		return "", err
	}
	_, inCall := f.procs.(proc.Local)
	log.G(ctx).WithFields(log.Fields{"id": f.id, "tier": d.Tier, "rule": d.Rule, "hosted": marker.Delegate.Hosted, "delegate": marker.Delegate.Address, "daemon": !inCall}).Debug("container routed")
	return startReply(addr, in)
}

// containerd releases from taskV3Major.taskV3Minor on are told that the
// router speaks task API v3. containerd then starts no shim for a pod's
// later containers and sends them straight to the pod's router, as it does
// for runc's shim; the router runs start for them in Create
// (router.joiner). 1.7 refuses v3, and 2.2 sends no Shutdown for such
// containers, which the router needs to end with its pod; 2.4, which the e2e
// runs, does.
const taskV3Major, taskV3Minor = 2, 4

// startReply is start's answer to containerd: the router's address, as a
// BootstrapResult of version 3 to the releases that take it from Triage,
// else plain (version 2), which every release reads.
func startReply(addr string, in startInput) (string, error) {
	if !takesTaskV3(in.params.GetContainerdVersion()) {
		return addr, nil
	}
	b, err := proto.Marshal(&bootstrap.BootstrapResult{Version: 3, Address: addr, Protocol: "ttrpc"})
	return string(b), err
}

// takesTaskV3 tells whether the containerd release BootstrapParams names
// ("2.4.2", "v2.4.2+unknown"; empty before 2.3) is told about v3.
func takesTaskV3(version string) bool {
	var major, minor int
	if _, err := fmt.Sscanf(strings.TrimPrefix(version, "v"), "%d.%d", &major, &minor); err != nil {
		return false
	}
	return major > taskV3Major || major == taskV3Major && minor >= taskV3Minor
}

// writeAddress points ./address at the router for the releases that
// reconnect through it after a restart: containerd 1.6 to 2.2, which send
// no BootstrapParams. The delegate's start may have written its own
// address there. Later releases keep the router's address in their own
// bootstrap.json, so ./address is left as the delegate made it: shims built
// on containerd's library remove the socket it names as they exit, which
// would be the pod's router's while the pod lives, and the write would cost
// an inode.
//
// It is rewritten in place, an inode less too: its readers are the
// delegate's start (gVisor's reads it as it begins), which has exited by
// now, and containerd after a restart.
func writeAddress(bundle, addr string, in startInput) error {
	if in.params != nil {
		return nil
	}
	return state.WriteFileInPlace(filepath.Join(bundle, "address"), []byte(addr), 0o644)
}

// prepareRecord records the pod's decision (for its first container) and
// makes the container's marker, empty until WriteContainer.
func prepareRecord(bundle string, pod *state.Pod, d classifier.Decision, member bool) error {
	if !member {
		if err := pod.SetDecision(d); err != nil {
			return err
		}
	}
	return state.ReserveContainer(bundle)
}

// abandon waits for a delegate start that start no longer needs and shuts
// the delegate down; p may be nil (nothing started).
func abandon(ctx context.Context, p *delegate.Pending, id string) {
	if p == nil {
		return
	}
	if reply, err := p.Reply(); err == nil {
		shutdownDelegate(ctx, reply, id)
	}
}

// delegateInput is what tier t's delegate gets: its options, and the stdin
// of its `start`, in the protocol containerd spoke to Triage.
func delegateInput(t *policy.Tier, in startInput) (*anypb.Any, []byte, error) {
	optsAny, err := delegateOptions(t).Any()
	if err != nil {
		return nil, nil, err
	}
	input, err := delegate.StartInput(optsAny, in.params)
	return optsAny, input, err
}

func delegateOptions(t *policy.Tier) delegate.Options {
	o := delegate.Options{Runtime: t.Runtime, ConfigPath: t.ConfigPath}
	if t.Runc != nil {
		o.SystemdCgroup, o.BinaryName, o.Root = t.Runc.SystemdCgroup, t.Runc.BinaryName, t.Runc.Root
	}
	return o
}

// hardenedSpec is the spec the delegate will run: the decision as an
// annotation, plus what the tier's delegate needs.
func hardenedSpec(spec *specs.Spec, tier *policy.Tier, id string, d classifier.Decision) ([]byte, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	if spec.Annotations == nil {
		spec.Annotations = map[string]string{}
	}
	spec.Annotations[DecisionAnnotation] = string(b)
	// gVisor's shim hangs in Create on a container that CRI did not
	// describe (ctr, nerdctl): present it as a pod of its own.
	if tier.Kind() == policy.KindGVisor && spec.Annotations[classifier.AnnotationContainerType] == "" {
		spec.Annotations[classifier.AnnotationContainerType] = "sandbox"
		spec.Annotations[annotationSandboxID] = id
	}
	return json.Marshal(spec)
}

// spawnRouter starts the router daemon (triage-router, next to this binary)
// for the pod on listener l. It runs in its own process group with no stdio
// (containerd reads start's output until every copy of the pipes is closed)
// and the listener as fd 3. socketDir is the socket_dir containerd gave
// start (2.4+), which the router passes on to the starts it runs; hosted
// makes it the pod's runc shim.
func spawnRouter(f flags, podID, bundle, socketDir string, hosted bool, l *net.UnixListener) (proc.Process, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	daemon := filepath.Join(filepath.Dir(self), router.DaemonBinary)
	lf, err := l.File()
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	args := append(front.ShimFlags(f.namespace, f.address, f.publishBinary, f.debug), "-id", podID)
	if socketDir != "" {
		args = append(args, "-socket-dir", socketDir)
	}
	if hosted {
		args = append(args, "-runc")
	}
	cmd := exec.Command(daemon, args...)
	cmd.Dir = bundle
	cmd.ExtraFiles = []*os.File{lf}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p, err := f.procs.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("start the router daemon: %w: install %s next to %s", err, router.DaemonBinary, self)
	}
	return p, nil
}
