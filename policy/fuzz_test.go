package policy_test

import (
	"os"
	"testing"

	"github.com/triage-runtime/triage/policy"
)

// FuzzParse: any input either parses into a policy that validates, or fails with errors
// that all name the file and a class; it never panics.
func FuzzParse(f *testing.F) {
	for _, path := range []string{"../configs/triage.toml", "../configs/examples/runc-only.toml"} {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(valid))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := policy.Parse("fuzz.toml", data)
		if err != nil {
			errs := policy.Errors(err)
			if len(errs) == 0 {
				t.Fatalf("error without a *policy.Error: %v", err)
			}
			for _, e := range errs {
				if e.File != "fuzz.toml" || e.Err == nil || e.Line < 1 || e.Column < 1 {
					t.Fatalf("error without file, class or position: %#v", e)
				}
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("parsed policy does not validate: %v", err)
		}
		if _, ok := p.Tier(p.DefaultTier); !ok {
			t.Fatalf("default tier %q missing", p.DefaultTier)
		}
		if len(p.TiersByStrength()) != len(p.Tiers) {
			t.Fatal("TiersByStrength lost tiers")
		}
	})
}
