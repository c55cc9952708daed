package delegate

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeShim writes an executable shell script standing in for a delegate
// shim's `start`, and returns an invocation of it in a fresh bundle.
func fakeShim(t *testing.T, script string) Invocation {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "containerd-shim-fake-v1")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "bundle")
	if err := os.Mkdir(bundle, 0o755); err != nil {
		t.Fatal(err)
	}
	return Invocation{Binary: bin, Namespace: "ns", Address: "/run/c.sock", ID: "c1", Bundle: bundle}
}

func TestSpawnPassesStdinAndParsesReply(t *testing.T) {
	inv := fakeShim(t, `cat > stdin.got; echo "$@" > args.got; echo '{"version":3,"address":"unix:///run/s/abc","protocol":"ttrpc"}'`)
	p, err := inv.Spawn(context.Background(), []byte("options"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.Reply()
	if err != nil {
		t.Fatalf("Reply: %v", err)
	}
	if r.Address != "unix:///run/s/abc" || r.Version != 3 {
		t.Errorf("reply = %+v, want unix:///run/s/abc in version 3", r)
	}
	if b, _ := os.ReadFile(filepath.Join(inv.Bundle, "stdin.got")); string(b) != "options" {
		t.Errorf("the delegate read stdin %q, want %q", b, "options")
	}
	if b, _ := os.ReadFile(filepath.Join(inv.Bundle, "args.got")); !strings.HasSuffix(strings.TrimSpace(string(b)), "-id c1 start") {
		t.Errorf("the delegate got args %q, want them to end in -id c1 start", b)
	}
}

func TestSpawnFailureNamesTheDelegatesError(t *testing.T) {
	inv := fakeShim(t, `echo "cannot create shim socket" >&2; exit 3`)
	p, err := inv.Spawn(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Reply()
	if err == nil || !strings.Contains(err.Error(), "cannot create shim socket") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("Reply error = %v, want the delegate's stderr and exit status", err)
	}
}

func TestAnsweredNeedsNoStart(t *testing.T) {
	p := Answered("/bin/containerd-shim-runc-v2", Reply{Address: "unix:///run/s/group", Version: 3})
	if p.Started() {
		t.Error("an answered start reports a delegate started")
	}
	if r, err := p.Reply(); err != nil || r.Address != "unix:///run/s/group" {
		t.Errorf("Reply = %+v, %v", r, err)
	}
}
