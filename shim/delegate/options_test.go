package delegate

import (
	"testing"

	bootstrap "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func TestOptionsAny(t *testing.T) {
	runc, err := Options{Runtime: "io.containerd.runc.v2", SystemdCgroup: true, BinaryName: "/usr/sbin/runc"}.Any()
	if err != nil {
		t.Fatal(err)
	}
	var ro runcoptions.Options
	if runc.GetTypeUrl() != "containerd.runc.v1.Options" || runc.UnmarshalTo(&ro) != nil || !ro.SystemdCgroup || ro.BinaryName != "/usr/sbin/runc" {
		t.Errorf("runc tier options = %v (%+v), want containerd.runc.v1.Options with the tier's fields", runc, &ro)
	}

	runsc, err := Options{Runtime: "io.containerd.runsc.v1", ConfigPath: "/etc/triage/runsc.toml"}.Any()
	if err != nil {
		t.Fatal(err)
	}
	var o runtimeoptions.Options
	if runsc.GetTypeUrl() != "runtimeoptions.v1.Options" || runsc.UnmarshalTo(&o) != nil || o.ConfigPath != "/etc/triage/runsc.toml" || o.TypeUrl != "io.containerd.runsc.v1.options" {
		t.Errorf("runsc tier options = %v (%+v), want runtimeoptions with ConfigPath", runsc, &o)
	}

	none, err := Options{Runtime: "io.containerd.kata.v2"}.Any()
	if err != nil || none != nil {
		t.Errorf("kata tier without config = %v, %v; want no options", none, err)
	}
}

func TestStartInputReplacesContainerdOptions(t *testing.T) {
	ours, _ := Options{Runtime: "io.containerd.runc.v2", BinaryName: "runc"}.Any()
	theirs, _ := anypb.New(&runtimeoptions.Options{ConfigPath: "/etc/triage/triage.toml"})
	other, _ := anypb.New(&bootstrap.Extension{})

	legacy, err := StartInput(ours, nil)
	if err != nil {
		t.Fatal(err)
	}
	var a anypb.Any
	if proto.Unmarshal(legacy, &a) != nil || a.GetTypeUrl() != "containerd.runc.v1.Options" {
		t.Errorf("legacy stdin = %v, want the delegate's options as an Any", &a)
	}
	if b, err := StartInput(nil, nil); err != nil || len(b) != 0 {
		t.Errorf("no options: stdin %q, %v; want empty", b, err)
	}

	params := &bootstrap.BootstrapParams{InstanceID: "c1", Namespace: "ns", Extensions: []*bootstrap.Extension{{Value: theirs}, {Value: other}}}
	b, err := StartInput(ours, params)
	if err != nil {
		t.Fatal(err)
	}
	var got bootstrap.BootstrapParams
	if err := proto.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range got.GetExtensions() {
		types = append(types, e.GetValue().GetTypeUrl())
	}
	if got.GetInstanceID() != "c1" || len(types) != 2 || types[0] != other.GetTypeUrl() || types[1] != "containerd.runc.v1.Options" {
		t.Errorf("bootstrap stdin extensions = %v, want containerd's non-option extension kept and Triage's options in place of its own", types)
	}
	if len(params.Extensions) != 2 {
		t.Error("StartInput modified the caller's params")
	}
}

func TestBinaryName(t *testing.T) {
	for in, want := range map[string]string{
		"io.containerd.runc.v2":  "containerd-shim-runc-v2",
		"io.containerd.runsc.v1": "containerd-shim-runsc-v1",
		"io.containerd.kata.v2":  "containerd-shim-kata-v2",
	} {
		if got, err := BinaryName(in); err != nil || got != want {
			t.Errorf("BinaryName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := BinaryName("runc"); err == nil {
		t.Error(`BinaryName("runc") accepted a runtime type without a version`)
	}
}

// delete reads a gVisor tier's runsc configuration back from the options its marker keeps.
func TestConfigPathFromOptions(t *testing.T) {
	runsc, err := Options{Runtime: "io.containerd.runsc.v1", ConfigPath: "/etc/triage/runsc.toml"}.Any()
	if err != nil {
		t.Fatal(err)
	}
	if got := ConfigPath(runsc.GetTypeUrl(), runsc.GetValue()); got != "/etc/triage/runsc.toml" {
		t.Errorf("ConfigPath of runsc options = %q, want /etc/triage/runsc.toml", got)
	}
	runc, err := Options{Runtime: "io.containerd.runc.v2", Root: "/run/runc"}.Any()
	if err != nil {
		t.Fatal(err)
	}
	if got := ConfigPath(runc.GetTypeUrl(), runc.GetValue()); got != "" {
		t.Errorf("ConfigPath of runc options = %q, want none", got)
	}
}
