package main

import (
	"slices"
	"testing"
)

// A spec that passes on runc must pass on triage, and the triage suite must not leave a kind
// of thing behind that the runc suite did not; containerd's own fds are only reported.
func TestRegressions(t *testing.T) {
	specs := func(state string) map[string]spec { return map[string]spec{"a": {State: state}} }
	for _, tc := range []struct {
		name        string
		runc, other suite
		want        []string
	}{
		{"same outcome, nothing left", suite{Specs: specs("passed")}, suite{Specs: specs("passed")}, nil},
		{"fails only on triage", suite{Specs: specs("passed")}, suite{Specs: specs("failed")},
			[]string{"2 triage: a (failed)"}},
		{"fails on both", suite{Specs: specs("failed")}, suite{Specs: specs("failed")}, nil},
		{"triage leaves a socket", suite{Specs: specs("passed")},
			suite{Specs: specs("passed"), Leaks: []string{"orphan shim socket: /run/triage/s/ab"}},
			[]string{"2 triage: left behind after the suite: orphan shim socket: /run/triage/s/ab"}},
		{"both leave a socket", suite{Specs: specs("passed"), Leaks: []string{"socket: /x/1"}},
			suite{Specs: specs("passed"), Leaks: []string{"socket: /x/2"}}, nil},
		{"only containerd's fds grow", suite{Specs: specs("passed")},
			suite{Specs: specs("passed"), Leaks: []string{"containerd pid 7 fds: 20 -> 24 (+4 socket)"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.runc.Handler, tc.other.Handler = "runc", "triage"
			r := report{Runs: []run{{Version: "2", Suites: []suite{tc.runc, tc.other}}}}
			if got := r.regressions(); !slices.Equal(got, tc.want) {
				t.Errorf("regressions() = %q, want %q", got, tc.want)
			}
		})
	}
}
