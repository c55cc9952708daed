package delegate

import (
	"fmt"
	"strings"

	bootstrap "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Options is what Triage tells a delegate about its tier. Triage builds each
// delegate's options itself: containerd would send Triage's own runtime
// options, which runc and gVisor reject at Create and Kata silently ignores.
type Options struct {
	// Runtime is the delegate's containerd runtime type.
	Runtime string
	// ConfigPath is the delegate's own config file (runsc TOML, Kata
	// configuration.toml); runc takes none.
	ConfigPath string
	// Runc options, for io.containerd.runc.* runtimes.
	SystemdCgroup bool
	BinaryName    string
	Root          string
}

// IsRunc tells whether a runtime type is served by containerd's runc shim.
func IsRunc(runtimeType string) bool {
	return strings.HasPrefix(runtimeType, "io.containerd.runc.")
}

// Any encodes the options in the type the delegate decodes: runc Options for
// runc, runtimeoptions{ConfigPath} for everyone else (nil when there is no
// config file, so the delegate uses its own defaults).
func (o Options) Any() (*anypb.Any, error) {
	var m proto.Message
	switch {
	case IsRunc(o.Runtime):
		m = &runcoptions.Options{SystemdCgroup: o.SystemdCgroup, BinaryName: o.BinaryName, Root: o.Root}
	case o.ConfigPath != "":
		m = &runtimeoptions.Options{TypeUrl: runtimeOptionsTypeURL(o.Runtime), ConfigPath: o.ConfigPath}
	default:
		return nil, nil
	}
	v, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s options: %w", o.Runtime, err)
	}
	// containerd's typeurl names proto messages by their full name.
	return &anypb.Any{TypeUrl: string(m.ProtoReflect().Descriptor().FullName()), Value: v}, nil
}

// ConfigPath is the delegate's own configuration (runsc's or Kata's TOML) that the
// options Any start built names, given as the marker keeps it (type URL and bytes); ""
// for runc's options or none.
func ConfigPath(typeURL string, options []byte) string {
	var o runtimeoptions.Options
	if (&anypb.Any{TypeUrl: typeURL}).MessageIs(&o) && proto.Unmarshal(options, &o) == nil {
		return o.GetConfigPath()
	}
	return ""
}

// runtimeOptionsTypeURL is the informational type_url CRI would put in
// runtimeoptions for that runtime; gVisor checks it.
func runtimeOptionsTypeURL(runtimeType string) string {
	return runtimeType + ".options"
}

// StartInput is the stdin of a delegate's `start`: in the protocol containerd
// used with Triage. With params (containerd 2.3+) it is a BootstrapParams
// whose runtime-option extensions are replaced by opts; otherwise the legacy
// marshalled Any (empty when there are no options).
func StartInput(opts *anypb.Any, params *bootstrap.BootstrapParams) ([]byte, error) {
	if params == nil {
		if opts == nil {
			return nil, nil
		}
		return proto.Marshal(opts)
	}
	p := proto.Clone(params).(*bootstrap.BootstrapParams)
	p.Extensions = nil
	for _, ext := range params.GetExtensions() {
		if !IsRuntimeOptions(ext.GetValue()) {
			p.Extensions = append(p.Extensions, ext)
		}
	}
	if opts != nil {
		p.Extensions = append(p.Extensions, &bootstrap.Extension{Value: opts})
	}
	return proto.Marshal(p)
}

// IsRuntimeOptions tells whether an Any holds runtime options (runc Options or
// runtimeoptions), the part of a request that is Triage's to rewrite.
func IsRuntimeOptions(a *anypb.Any) bool {
	return a.MessageIs(&runcoptions.Options{}) || a.MessageIs(&runtimeoptions.Options{})
}
