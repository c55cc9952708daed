package shim

import (
	"fmt"
	"strings"

	bootstrap "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/triage-runtime/triage/policy"
	"github.com/triage-runtime/triage/shim/delegate"
)

// policies are compiled once per process and text: triage-shimd serves
// every start of the node.
var policies policy.Cache

// DefaultPolicyPath is read when the runtime options name no policy and containerd's
// environment names none (PolicyPathEnv).
const DefaultPolicyPath = "/etc/triage/triage.toml"

// PolicyPathEnv, in containerd's environment (which its shims inherit), names the policy
// read when the runtime options name none: nerdctl and `ctr run --runtime` without
// --runtime-config-path pass no options. A systemd drop-in sets it with
// Environment=TRIAGE_POLICY=/path/to/triage.toml.
const PolicyPathEnv = "TRIAGE_POLICY"

// defaultPolicyPath is the policy read when the runtime options name none.
func defaultPolicyPath(env []string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, PolicyPathEnv+"="); ok && v != "" {
			return v
		}
	}
	return DefaultPolicyPath
}

// startInput is what containerd wrote on `start`'s stdin.
type startInput struct {
	// options are Triage's own runtime options (nil when none were set).
	options *anypb.Any
	// params is set when containerd (2.3+) spoke the BootstrapParams
	// protocol; delegates are then started the same way.
	params *bootstrap.BootstrapParams
}

// parseStartInput reads both stdin protocols. A legacy Any also decodes as a
// BootstrapParams (its type URL lands in instance_id), so the input counts
// as BootstrapParams only when it names this very container and namespace.
func parseStartInput(b []byte, f flags) (startInput, error) {
	if len(b) == 0 {
		return startInput{}, nil
	}
	var p bootstrap.BootstrapParams
	if proto.Unmarshal(b, &p) == nil && p.GetInstanceID() == f.id && p.GetNamespace() == f.namespace {
		in := startInput{params: &p}
		for _, ext := range p.GetExtensions() {
			if a := ext.GetValue(); delegate.IsRuntimeOptions(a) {
				in.options = a
			}
		}
		return in, nil
	}
	var a anypb.Any
	if err := proto.Unmarshal(b, &a); err != nil {
		return startInput{}, fmt.Errorf("stdin holds neither runtime options nor BootstrapParams: %w", err)
	}
	return startInput{options: &a}, nil
}

// loadPolicy loads the policy the runtime options name: ConfigBody (inline
// TOML, containerd 1.7+ CRI), else ConfigPath, else the one containerd's
// environment env names, else DefaultPolicyPath.
func loadPolicy(opts *anypb.Any, env []string) (*policy.Policy, error) {
	if opts == nil {
		return policies.Load(defaultPolicyPath(env))
	}
	if opts.MessageIs(&runcoptions.Options{}) {
		return nil, fmt.Errorf("runtime options are runc Options, but %s takes runtimeoptions: set options.ConfigPath (or TypeUrl + ConfigPath) for the triage runtime in the containerd config", RuntimeType)
	}
	var o runtimeoptions.Options
	if err := opts.UnmarshalTo(&o); err != nil {
		return nil, fmt.Errorf("runtime options of type %q: %w: set options.ConfigPath for the triage runtime in the containerd config", opts.GetTypeUrl(), err)
	}
	switch {
	case o.GetConfigPath() != "":
		return policies.Load(o.GetConfigPath())
	case len(o.GetConfigBody()) > 0:
		return policies.Parse("<runtime options ConfigBody>", o.GetConfigBody())
	default:
		return policies.Load(defaultPolicyPath(env))
	}
}
