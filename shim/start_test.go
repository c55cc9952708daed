package shim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bootstrap "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"google.golang.org/protobuf/proto"

	"github.com/triage-runtime/triage/classifier"
	"github.com/triage-runtime/triage/hardening"
	"github.com/triage-runtime/triage/policy"
	"github.com/triage-runtime/triage/shim/front"
	"github.com/triage-runtime/triage/shim/state"
)

// containerd 2.4+ hears task API v3 (and then sends a pod's later containers straight to
// its router); older releases, which refuse v3 (1.7) or do not send Shutdown for such
// containers (2.2), hear a plain address.
func TestStartReplyVersion(t *testing.T) {
	const addr = "unix:///run/triage/s/r-1"
	for _, tc := range []struct {
		containerd string // as BootstrapParams names it; "" before 2.3
		v3         bool
	}{
		{"", false}, {"1.7.27", false}, {"2.3.4", false}, {"garbage", false},
		{"2.4.2+unknown", true}, {"v2.4.0", true}, {"2.10.1", true}, {"3.0.0", true},
	} {
		in := startInput{}
		if tc.containerd != "" {
			in.params = &bootstrap.BootstrapParams{ContainerdVersion: tc.containerd}
		}
		got, err := startReply(addr, in)
		if err != nil {
			t.Fatal(err)
		}
		if !tc.v3 {
			if got != addr {
				t.Errorf("containerd %q: reply %q, want the plain address", tc.containerd, got)
			}
			continue
		}
		var r bootstrap.BootstrapResult
		if err := proto.Unmarshal([]byte(got), &r); err != nil || r.Version != 3 || r.Address != addr || r.Protocol != "ttrpc" {
			t.Errorf("containerd %q: reply decodes to %v (%v), want version 3 ttrpc at %s", tc.containerd, &r, err, addr)
		}
	}
}

// ./address names the router only for the releases that reconnect through it (no
// BootstrapParams); later ones keep the delegate's, whose shim removes the socket it
// names as it exits.
func TestWriteAddress(t *testing.T) {
	const router = "unix:///run/triage/s/r-1"
	for _, tc := range []struct {
		name   string
		in     startInput
		before string // the delegate's ./address, "" for none
		want   string // "" for none
	}{
		{name: "1.6 replaces the delegate's", before: "unix:///run/containerd/s/longer-delegate-socket", want: router},
		{name: "1.6 without one", want: router},
		{name: "2.4 keeps the delegate's", in: startInput{params: &bootstrap.BootstrapParams{ContainerdVersion: "2.4.2"}}, before: "unix:///run/containerd/s/d", want: "unix:///run/containerd/s/d"},
		{name: "2.4 writes none", in: startInput{params: &bootstrap.BootstrapParams{ContainerdVersion: "2.4.2"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bundle := t.TempDir()
			name := filepath.Join(bundle, "address")
			if tc.before != "" {
				if err := os.WriteFile(name, []byte(tc.before), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := writeAddress(bundle, router, tc.in); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(name)
			if tc.want == "" {
				if !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("./address holds %q (%v), want none", got, err)
				}
				return
			}
			if string(got) != tc.want {
				t.Fatalf("./address holds %q (%v), want %q", got, err, tc.want)
			}
		})
	}
}

// TestPodLives: a pod whose members containerd no longer has (a start killed half-way) is
// stale; its state is cleared, so the next container is classified afresh.
func TestPodLives(t *testing.T) {
	addr := filepath.Join(t.TempDir(), "containerd.sock")
	t.Cleanup(func() { os.RemoveAll(state.ContainerdDir(addr)) })
	nsDir := t.TempDir()
	for _, id := range []string{"sandbox", "app"} {
		if err := os.Mkdir(filepath.Join(nsDir, id), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name    string
		members []string
		lives   bool
	}{
		{"a running sandbox", []string{"sandbox"}, true},
		{"no member: the first start died before recording one", nil, false},
		{"only members without a bundle", []string{"gone"}, false},
		{"only the starting container itself", []string{"app"}, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod, err := state.LockPod(addr, "ns", fmt.Sprintf("pod%d", i))
			if err != nil {
				t.Fatal(err)
			}
			defer pod.Remove()
			if err := pod.SetDecision(classifier.Decision{Action: classifier.ActionRun, Tier: "sandboxed"}); err != nil {
				t.Fatal(err)
			}
			for _, m := range tc.members {
				if err := pod.AddMember(m); err != nil {
					t.Fatal(err)
				}
			}
			lives, _, err := podLives(pod, filepath.Join(nsDir, "app"))
			if err != nil || lives != tc.lives {
				t.Fatalf("podLives = %t, %v; want %t", lives, err, tc.lives)
			}
			var d classifier.Decision
			if had, _ := pod.Decision(&d); had != tc.lives {
				t.Errorf("after podLives the pod has a decision: %t, want %t", had, tc.lives)
			}
		})
	}
}

func TestDelegateFailedNamesTheCopyNextToContainerd(t *testing.T) {
	dir := t.TempDir()
	cause := errors.New("start failed")
	binary := filepath.Join(dir, "containerd-shim-nowhere-v9")
	publish := filepath.Join(dir, "containerd")
	cases := []struct {
		name string
		tier policy.Tier
		hint bool
	}{
		{"found next to containerd", policy.Tier{Name: "t"}, true},
		{"named by shim_path", policy.Tier{Name: "t", ShimPath: binary}, false},
	}
	for _, tc := range cases {
		err := delegateFailed(&tc.tier, binary, publish, cause)
		if !errors.Is(err, cause) || !strings.Contains(err.Error(), binary) {
			t.Errorf("%s: %v does not wrap the cause and name the binary", tc.name, err)
		}
		if got := strings.Contains(err.Error(), "not on containerd's PATH"); got != tc.hint {
			t.Errorf("%s: hint %t, want %t: %v", tc.name, got, tc.hint, err)
		}
	}
}

// TestExitCodeKeepsTheKind: a failed call's exit code says what failed, for the router.
func TestExitCodeKeepsTheKind(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want int
	}{
		{"denied by a rule", (&classifier.Decision{Action: classifier.ActionDeny, Rule: "r", Reason: "no"}).Err(), front.ExitDenied},
		{"refused by the hardening", fmt.Errorf("start: %w", &hardening.Error{Control: "hooks", Err: hardening.ErrHooks}), front.ExitDenied},
		{"tier cannot run", fmt.Errorf("tier %q %w: %w", "isolated", ErrTierUnrunnable, errors.New("no /dev/kvm")), front.ExitUnrunnable},
		{"anything else", errors.New("disk full"), front.ExitFailed},
	}
	for _, tc := range cases {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("%s: exit %d, want %d", tc.name, got, tc.want)
		}
	}
}
