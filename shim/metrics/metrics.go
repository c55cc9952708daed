// Package metrics keeps Triage's node metrics in a file that node_exporter's textfile
// collector serves (--collector.textfile.directory). Triage's processes come and go (the
// node daemon exits when idle, a start may run in the front's own process), so the file
// itself holds the counts: each update locks it, reads it, adds, and writes it again whole
// (rename), and no count resets when a process exits.
package metrics

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sys/unix"
)

// The metrics Triage exports. README lists them.
const (
	// Decisions counts decisions by action, tier and rule.
	Decisions = "triage_decisions_total"
	// Refusals counts workloads refused, by cause ("rule:NAME", "control:ID",
	// "unrunnable-tier", "request", "invalid-spec").
	Refusals = "triage_refusals_total"
	// StartSeconds is the time Triage's own part of a start takes (classify, harden,
	// persist, hand to the delegate), until its reply to containerd.
	StartSeconds = "triage_start_seconds"
	// PolicyLoads counts policy compiles by result ("ok", "error"): a changed text, or a
	// new Triage process reading it.
	PolicyLoads = "triage_policy_loads_total"
	// Pods is the number of pods Triage serves, by tier.
	Pods = "triage_pods"
)

var help = map[string]string{
	Decisions:    "Decisions Triage made, by action, tier and rule.",
	Refusals:     "Workloads Triage refused, by cause: rule:NAME, control:ID, unrunnable-tier, request, invalid-spec.",
	StartSeconds: "Time Triage's own part of a container start took, until its reply to containerd.",
	PolicyLoads:  "Policy texts compiled by Triage's processes (a changed text, or a new process), by result.",
	Pods:         "Pods Triage serves on this node, by tier.",
}

// startBuckets are the upper bounds of StartSeconds: a start's own part takes milliseconds.
var startBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

// Update is what one event adds to the metrics.
type Update struct {
	// Decision, when set, counts a decision: action, tier ("" for a denial) and rule.
	Decision *Decision
	// Refusal, when set, counts a refused workload with this cause.
	Refusal string
	// Start, when positive, is observed in StartSeconds.
	Start time.Duration
	// PolicyLoad, when set, counts a policy load with this result ("ok" or "error").
	PolicyLoad string
	// Pods are the pods served per tier now; nil leaves the gauge as it is.
	Pods map[string]int
}

// Decision labels a counted decision.
type Decision struct{ Action, Tier, Rule string }

// Record adds u to the metrics file at path (made if missing).
func Record(path string, u Update) (retErr error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("metrics: %w: fix metrics_textfile in the policy", err)
	}
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("metrics: lock %s: %w", lock.Name(), err)
	}
	fams, err := read(path)
	if err != nil {
		return err
	}
	s := set{fams}
	if d := u.Decision; d != nil {
		s.add(Decisions, 1, "action", d.Action, "tier", d.Tier, "rule", d.Rule)
	}
	if u.Refusal != "" {
		s.add(Refusals, 1, "cause", u.Refusal)
	}
	if u.Start > 0 {
		s.observe(StartSeconds, u.Start.Seconds())
	}
	if u.PolicyLoad != "" {
		s.add(PolicyLoads, 1, "result", u.PolicyLoad)
	}
	if u.Pods != nil {
		s.setPods(u.Pods)
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(collector{fams}); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if err := prometheus.WriteToTextfile(path, reg); err != nil {
		return fmt.Errorf("metrics: %w: fix metrics_textfile in the policy or the folder's permissions", err)
	}
	return nil
}

// read parses the metrics file; a missing file has no metrics yet, and one that does not
// parse (not Triage's, or cut by a crash before rename existed) is an error, never
// overwritten.
func read(path string) (map[string]*dto.MetricFamily, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]*dto.MetricFamily{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(f)
	if err != nil {
		return nil, fmt.Errorf("metrics: %s is not a metrics file (%w): remove it, or name another in metrics_textfile", path, err)
	}
	return fams, nil
}

// set changes metric families in place.
type set struct{ fams map[string]*dto.MetricFamily }

func (s set) family(name string, typ dto.MetricType) *dto.MetricFamily {
	f := s.fams[name]
	if f == nil {
		f = &dto.MetricFamily{Name: &name, Help: ptr(help[name]), Type: &typ}
		s.fams[name] = f
	}
	return f
}

// metric returns the family's metric with exactly these label pairs (name, value, ...).
func (s set) metric(f *dto.MetricFamily, labels ...string) *dto.Metric {
	for _, m := range f.Metric {
		if hasLabels(m, labels) {
			return m
		}
	}
	m := &dto.Metric{}
	for i := 0; i < len(labels); i += 2 {
		m.Label = append(m.Label, &dto.LabelPair{Name: ptr(labels[i]), Value: ptr(labels[i+1])})
	}
	f.Metric = append(f.Metric, m)
	return m
}

func hasLabels(m *dto.Metric, labels []string) bool {
	if len(m.Label) != len(labels)/2 {
		return false
	}
	for i := 0; i < len(labels); i += 2 {
		if !slices.ContainsFunc(m.Label, func(l *dto.LabelPair) bool { return l.GetName() == labels[i] && l.GetValue() == labels[i+1] }) {
			return false
		}
	}
	return true
}

func (s set) add(name string, v float64, labels ...string) {
	m := s.metric(s.family(name, dto.MetricType_COUNTER), labels...)
	if m.Counter == nil {
		m.Counter = &dto.Counter{Value: ptr(0.0)}
	}
	*m.Counter.Value += v
}

func (s set) observe(name string, v float64) {
	m := s.metric(s.family(name, dto.MetricType_HISTOGRAM))
	if m.Histogram == nil {
		m.Histogram = &dto.Histogram{SampleCount: ptr[uint64](0), SampleSum: ptr(0.0)}
		for _, b := range startBuckets {
			m.Histogram.Bucket = append(m.Histogram.Bucket, &dto.Bucket{UpperBound: ptr(b), CumulativeCount: ptr[uint64](0)})
		}
	}
	h := m.Histogram
	*h.SampleCount++
	*h.SampleSum += v
	for _, b := range h.Bucket {
		if v <= b.GetUpperBound() {
			*b.CumulativeCount++
		}
	}
}

func (s set) setPods(pods map[string]int) {
	f := s.family(Pods, dto.MetricType_GAUGE)
	f.Metric = nil
	for _, tier := range slices.Sorted(maps.Keys(pods)) {
		s.metric(f, "tier", tier).Gauge = &dto.Gauge{Value: ptr(float64(pods[tier]))}
	}
}

func ptr[T any](v T) *T { return &v }

// collector hands the families to a prometheus registry, which writes them.
type collector struct{ fams map[string]*dto.MetricFamily }

var _ prometheus.Collector = collector{}

// Describe sends nothing: the collector is unchecked, as its label sets come from the file.
func (collector) Describe(chan<- *prometheus.Desc) {}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, name := range slices.Sorted(maps.Keys(c.fams)) {
		f := c.fams[name]
		for _, m := range f.Metric {
			names, values := labelsOf(m)
			desc := prometheus.NewDesc(name, cmpHelp(f), names, nil)
			var metric prometheus.Metric
			var err error
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				metric, err = prometheus.NewConstMetric(desc, prometheus.CounterValue, m.GetCounter().GetValue(), values...)
			case dto.MetricType_GAUGE:
				metric, err = prometheus.NewConstMetric(desc, prometheus.GaugeValue, m.GetGauge().GetValue(), values...)
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				buckets := map[float64]uint64{}
				for _, b := range h.GetBucket() {
					buckets[b.GetUpperBound()] = b.GetCumulativeCount()
				}
				metric, err = prometheus.NewConstHistogram(desc, h.GetSampleCount(), h.GetSampleSum(), buckets, values...)
			default:
				continue
			}
			if err == nil {
				ch <- metric
			}
		}
	}
}

func labelsOf(m *dto.Metric) (names, values []string) {
	ls := slices.Clone(m.Label)
	sort.Slice(ls, func(i, j int) bool { return ls[i].GetName() < ls[j].GetName() })
	for _, l := range ls {
		names = append(names, l.GetName())
		values = append(values, l.GetValue())
	}
	return names, values
}

func cmpHelp(f *dto.MetricFamily) string {
	if h := help[f.GetName()]; h != "" {
		return h
	}
	return strings.TrimSpace(f.GetHelp())
}
