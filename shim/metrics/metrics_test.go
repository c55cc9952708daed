package metrics

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func families(t *testing.T, path string) map[string]float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(f)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for name, fam := range fams {
		for _, m := range fam.Metric {
			key := name
			for _, l := range m.Label {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[key] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[key+",count"] = float64(m.Histogram.GetSampleCount())
				for _, b := range m.Histogram.Bucket {
					if b.GetUpperBound() == 0.005 {
						out[key+",le=0.005"] = float64(b.GetCumulativeCount())
					}
				}
			}
		}
	}
	return out
}

// TestRecordAddsAcrossProcesses: every Record reads the file and adds to it, so counts go
// on from where the last process (any process) left them, also when several write at once.
func TestRecordAddsAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "textfile", "triage.prom")
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			u := Update{Decision: &Decision{Action: "run", Tier: "trusted", Rule: "default"}, Start: time.Duration(i+1) * time.Millisecond}
			if i%4 == 0 {
				u = Update{Decision: &Decision{Action: "deny", Rule: "no-privileged"}, Refusal: "rule:no-privileged"}
			}
			if err := Record(path, u); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := Record(path, Update{PolicyLoad: "error", Pods: map[string]int{"trusted": 3, "sandboxed": 1}}); err != nil {
		t.Fatal(err)
	}
	got := families(t, path)
	want := map[string]float64{
		Decisions + ",action=run,rule=default,tier=trusted": 15,
		Decisions + ",action=deny,rule=no-privileged,tier=": 5,
		Refusals + ",cause=rule:no-privileged":              5,
		StartSeconds + ",count":                             15,
		StartSeconds + ",le=0.005":                          3, // 2, 3 and 4 ms (i = 0 and 4 are denials)
		PolicyLoads + ",result=error":                       1,
		Pods + ",tier=trusted":                              3,
		Pods + ",tier=sandboxed":                            1,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

func TestRecordRefusesAFileItDidNotWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "triage.prom")
	if err := os.WriteFile(path, []byte("this is { not metrics\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Record(path, Update{Refusal: "request"})
	if err == nil || !strings.Contains(err.Error(), "is not a metrics file") {
		t.Fatalf("Record over a foreign file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "this is { not metrics\n" {
		t.Error("the foreign file was overwritten")
	}
	if err := Record(filepath.Join(path, "sub", "x.prom"), Update{Refusal: "request"}); err == nil {
		t.Error("a path below a file gave no error")
	}
}
