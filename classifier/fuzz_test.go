package classifier_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/triage-runtime/triage/classifier"
)

// FuzzClassify: any config.json bytes, containerd namespace and tier label give a run
// decision for a real tier or a denial with an error, the same one every time; never a
// panic.
func FuzzClassify(f *testing.F) {
	paths, err := filepath.Glob(filepath.Join(corpusDir, "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, "k8s.io", "")
	}
	p := loadExample(f)
	f.Fuzz(func(t *testing.T, data []byte, namespace, tierLabel string) {
		var spec *specs.Spec
		if err := json.Unmarshal(data, &spec); err != nil {
			spec = nil
		}
		facts := classifier.Facts{Spec: spec, Namespace: namespace, Labels: map[string]string{classifier.TierRequestKey: tierLabel}}
		d := classifier.Classify(p, facts)
		switch d.Action {
		case classifier.ActionRun:
			tier, ok := p.Tier(d.Tier)
			if !ok || tier.Runtime != d.Runtime || d.Err() != nil {
				t.Fatalf("run decision with tier %q runtime %q err %v", d.Tier, d.Runtime, d.Err())
			}
		case classifier.ActionDeny:
			if !errors.Is(d.Err(), classifier.ErrDenied) || d.Reason == "" {
				t.Fatalf("deny decision without error or reason: %+v", d)
			}
		default:
			t.Fatalf("action %q", d.Action)
		}
		if d.Findings == nil {
			t.Fatal("nil findings")
		}
		if again := classifier.Classify(p, facts); !reflect.DeepEqual(again, d) {
			t.Fatalf("not deterministic:\n%+v\n%+v", d, again)
		}
		if d.Action == classifier.ActionRun {
			m := classifier.CheckMember(p, d, facts)
			if m.Action != classifier.ActionRun || m.Tier != d.Tier {
				t.Fatalf("a container denied or moved in its own pod: %+v", m)
			}
		}
	})
}
