package classifier

import (
	"flag"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/triage-runtime/triage/policy"
)

// TestInventoryCoversTheSpec: every field of the spec's Go types (the runtime-spec version in
// go.mod) is judged, hardened or passed, so a newer runtime-spec's fields fail this test
// until they are listed; and every Linux field below the sections listed is covered.
func TestInventoryCoversTheSpec(t *testing.T) {
	listed := map[string]bool{}
	for _, f := range Inventory {
		if listed[f.Path] {
			t.Errorf("%s listed twice", f.Path)
		}
		listed[f.Path] = true
		if (f.How == Passed) != (len(f.By) == 0) || f.Why == "" {
			t.Errorf("%s: %s by %v (%q): a passed field names no check and says why; the others name theirs", f.Path, f.How, f.By, f.Why)
		}
		for _, id := range f.By {
			if strings.Contains(id, "-") && !slices.Contains(policy.FindingIDs(), id) {
				t.Errorf("%s names finding %q, which does not exist", f.Path, id)
			}
		}
	}
	sections := map[string]reflect.Type{
		"":        reflect.TypeFor[specs.Spec](),
		"process": reflect.TypeFor[specs.Process](),
		"root":    reflect.TypeFor[specs.Root](),
		"linux":   reflect.TypeFor[specs.Linux](),
	}
	for at, typ := range sections {
		for name := range jsonFields(typ) {
			p := join(at, name)
			if _, isSection := sections[p]; isSection || slices.Contains(otherPlatforms, p) {
				continue
			}
			if !listed[p] {
				t.Errorf("spec field %s is not in the inventory: judge it, harden it, or say why it is harmless", p)
			}
		}
	}
}

func TestUnknownFields(t *testing.T) {
	cases := []struct {
		name, json string
		want       []string
	}{
		{"known", `{"ociVersion":"1.2.0","process":{"args":["sh"],"user":{"uid":0,"gid":0}},"linux":{"sysctl":{"a":"b"},"resources":{"pids":{"limit":5}}}}`, nil},
		{"top level", `{"ociVersion":"1.2.0","future":{}}`, []string{"future"}},
		{"nested", `{"linux":{"resources":{"pids":{"limit":5,"burst":9}}}}`, []string{"linux.resources.pids.burst"}},
		{"in a list", `{"mounts":[{"destination":"/a"},{"destination":"/b","idmap":true}]}`, []string{"mounts[1].idmap"}},
		{"in a map's values", `{"linux":{"netDevices":{"eth0":{"name":"x","mac":"y"}}}}`, []string{"linux.netDevices.eth0.mac"}},
		{"case-insensitive spelling Go would accept", `{"Process":{"args":["sh"]}}`, []string{"Process"}},
		{"another platform's section", `{"vm":{"hypervisor":{"path":"/bin/sh"}}}`, []string{"vm"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := UnknownFields([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("UnknownFields = %q, want %q", got, tc.want)
			}
		})
	}
	many := `{`
	for i := range 20 {
		many += fmt.Sprintf(`"f%02d":1,`, i)
	}
	many = strings.TrimSuffix(many, ",") + `}`
	if got, _ := UnknownFields([]byte(many)); len(got) != maxUnknownFields+1 || got[maxUnknownFields] != "and 10 more" {
		t.Errorf("20 unknown fields gave %q", got)
	}
	if _, err := UnknownFields([]byte(`[1]`)); err == nil {
		t.Error("a JSON array is no spec, but gave no error")
	}
}

func FuzzUnknownFields(f *testing.F) {
	f.Add([]byte(`{"process":{"args":["sh"]},"linux":{"namespaces":[{"type":"pid"}]}}`))
	f.Add([]byte(`{"mounts":[{"destination":"/a","x":1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := UnknownFields(data)
		if err != nil {
			return
		}
		if len(got) > maxUnknownFields+1 {
			t.Fatalf("%d fields reported", len(got))
		}
	})
}

var update = flag.Bool("update", false, "rewrite docs/spec-inventory.md")

// TestInventoryDoc keeps docs/spec-inventory.md the rendering of Inventory
// (go test ./classifier -run TestInventoryDoc -update rewrites it).
func TestInventoryDoc(t *testing.T) {
	var b strings.Builder
	b.WriteString("# What Triage does with each field of the OCI runtime spec\n\n")
	b.WriteString("Generated from `classifier.Inventory` (`go test ./classifier -run TestInventoryDoc -update`). ")
	b.WriteString("A field of a path listed covers every field below it. A field not listed (a newer spec, ")
	b.WriteString("another platform's section `solaris`, `windows`, `vm`, `zos`, `freebsd`) is the finding ")
	b.WriteString("`unknown-field`, which the hardening control `unknown_fields` refuses by default.\n\n")
	b.WriteString("| field | how | findings and controls | why |\n|---|---|---|---|\n")
	for _, f := range Inventory {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", f.Path, f.How, strings.Join(f.By, ", "), f.Why)
	}
	const doc = "../docs/spec-inventory.md"
	if *update {
		if err := os.WriteFile(doc, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(doc)
	if err != nil || string(got) != b.String() {
		t.Errorf("%s is not the rendering of Inventory (err %v): run go test ./classifier -run TestInventoryDoc -update", doc, err)
	}
}

func TestDecodeSpec(t *testing.T) {
	cases := []struct {
		name, json string
		unknown    []string
		err        bool
	}{
		{"known fields", `{"ociVersion":"1.2.0","process":{"args":["sh"]},"linux":{"cgroupsPath":"/default/c1"}}`, nil, false},
		{"an unknown field", `{"process":{"args":["sh"]},"linux":{"futureKnob":true}}`, []string{"linux.futureKnob"}, false},
		{"another platform's section", `{"process":{"args":["sh"]},"vm":{"hypervisor":{"path":"/bin/sh"}}}`, []string{"vm"}, false},
		{"not JSON", `{"process":`, nil, true},
		{"trailing data", `{"process":{"args":["sh"]}} {}`, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, unknown, err := DecodeSpec([]byte(tc.json))
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %t", err, tc.err)
			}
			if err == nil && (s == nil || !slices.Equal(unknown, tc.unknown)) {
				t.Errorf("spec %v, unknown %q; want %q", s, unknown, tc.unknown)
			}
		})
	}
}

// BenchmarkDecodeSpec: a spec as containerd writes it is decoded once, as before unknown
// fields were looked for.
func BenchmarkDecodeSpec(b *testing.B) {
	data, err := os.ReadFile("testdata/corpus/cri-runtime-mounts.json")
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		if _, _, err := DecodeSpec(data); err != nil {
			b.Fatal(err)
		}
	}
}
