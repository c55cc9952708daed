package shim

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	bootstrap "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseStartInput(t *testing.T) {
	f := flags{id: "c1", namespace: "default"}
	opts := mustAny(t, &runtimeoptions.Options{ConfigPath: "/etc/triage/x.toml"})
	params := &bootstrap.BootstrapParams{InstanceID: "c1", Namespace: "default", Extensions: []*bootstrap.Extension{{Value: opts}}}
	otherParams := &bootstrap.BootstrapParams{InstanceID: "other", Namespace: "default"}

	for _, tc := range []struct {
		name       string
		in         []byte
		wantParams bool
		wantPath   string
	}{
		{name: "empty", in: nil},
		{name: "legacy any", in: mustMarshal(t, opts), wantPath: "/etc/triage/x.toml"},
		{name: "bootstrap params", in: mustMarshal(t, params), wantParams: true, wantPath: "/etc/triage/x.toml"},
		// A BootstrapParams for another instance is not ours: read as legacy.
		{name: "params of another instance", in: mustMarshal(t, otherParams)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStartInput(tc.in, f)
			if err != nil {
				t.Fatal(err)
			}
			if (got.params != nil) != tc.wantParams {
				t.Errorf("params = %v, want set: %v", got.params, tc.wantParams)
			}
			var o runtimeoptions.Options
			if got.options != nil {
				_ = got.options.UnmarshalTo(&o)
			}
			if o.ConfigPath != tc.wantPath {
				t.Errorf("ConfigPath = %q, want %q", o.ConfigPath, tc.wantPath)
			}
		})
	}
}

func TestLoadPolicyRefusesRuncOptions(t *testing.T) {
	_, err := loadPolicy(mustAny(t, &runcoptions.Options{BinaryName: "runc"}), nil)
	if err == nil {
		t.Fatal("runc Options accepted as Triage's runtime options")
	}
}

func TestLoadPolicyNamesMissingFile(t *testing.T) {
	_, err := loadPolicy(mustAny(t, &runtimeoptions.Options{ConfigPath: "/nonexistent/triage.toml"}), nil)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/triage.toml") {
		t.Fatalf("error %v does not name the missing policy file", err)
	}
}

func TestPodOf(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ann     map[string]string
		want    string
		wantErr bool // the key would name a folder outside the pod state
	}{
		{name: "alone", want: "c1"},
		{name: "runc group", ann: map[string]string{annotationRuncGroup: "g"}, want: "g"},
		{name: "cri sandbox wins", ann: map[string]string{annotationRuncGroup: "g", annotationSandboxID: "sb"}, want: "sb"},
		{name: "group climbs out", ann: map[string]string{annotationRuncGroup: "../../../../etc"}, wantErr: true},
		{name: "sandbox with a slash", ann: map[string]string{annotationSandboxID: "a/b"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := podOf(&specs.Spec{Annotations: tc.ann}, "c1")
			if tc.wantErr {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("podOf = %q, %v; want an invalid-argument error", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("podOf = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestDefaultPolicyPathFromContainerdsEnvironment: without runtime options (nerdctl, ctr
// without --runtime-config-path), TRIAGE_POLICY in containerd's environment names the
// policy.
func TestDefaultPolicyPathFromContainerdsEnvironment(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{nil, DefaultPolicyPath},
		{[]string{"PATH=/bin", "TRIAGE_POLICY=/srv/triage.toml"}, "/srv/triage.toml"},
		{[]string{"TRIAGE_POLICY="}, DefaultPolicyPath},
	} {
		if got := defaultPolicyPath(tc.env); got != tc.want {
			t.Errorf("defaultPolicyPath(%q) = %q, want %q", tc.env, got, tc.want)
		}
	}
	_, err := loadPolicy(nil, []string{"TRIAGE_POLICY=/nonexistent/from-env.toml"})
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "/nonexistent/from-env.toml") {
		t.Errorf("loadPolicy with TRIAGE_POLICY: %v, want the missing file named", err)
	}
}
