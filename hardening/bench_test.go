package hardening_test

import (
	"encoding/json"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/triage-runtime/triage/hardening"
)

// BenchmarkApply hardens the spec `ctr run` writes, as the shim does once per container
// start: decode config.json, Apply, encode it again (the shim writes it back).
func BenchmarkApply(b *testing.B) {
	for _, bc := range []struct{ name, runtime, hardening string }{
		{"runc-defaults", runc, ""},
		{"runc-strict", runc, `seccomp = "strict"`},
		{"runsc-defaults", runsc, ""},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tr := tier(b, bc.runtime, bc.hardening)
			data, err := json.Marshal(ctrDefault(b))
			if err != nil {
				b.Fatal(err)
			}
			b.Run("apply", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					b.StopTimer()
					var s specs.Spec
					if err := json.Unmarshal(data, &s); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					if _, err := hardening.Apply(&s, tr, hardening.Host{}); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("decode-apply-encode", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					var s specs.Spec
					if err := json.Unmarshal(data, &s); err != nil {
						b.Fatal(err)
					}
					if _, err := hardening.Apply(&s, tr, hardening.Host{}); err != nil {
						b.Fatal(err)
					}
					if _, err := json.Marshal(&s); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
