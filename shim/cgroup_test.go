package shim

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A container's process that does not die at once (here: frozen, as a paused container's
// is; in the chaos e2e: a killed runc or runsc process still exiting) keeps its cgroup
// busy. removeCgroup must kill it, wait for it to leave, and remove the cgroup: before, it
// tried once and left the cgroup, which refused every later container of that id. Needs
// root, as the shim does.
func TestRemoveCgroupWaitsForWhatItKills(t *testing.T) {
	id := fmt.Sprintf("triage-unit-%d", os.Getpid())
	path := "/" + id
	bundle := t.TempDir()
	spec, _ := json.Marshal(specs.Spec{Linux: &specs.Linux{CgroupsPath: path}})
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), spec, 0o600); err != nil {
		t.Fatal(err)
	}
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	exists := freezeIn(t, path, sleep.Process.Pid)

	removeCgroup(context.Background(), ownCgroup(bundle, id))

	exited := make(chan error, 1)
	go func() { exited <- sleep.Wait() }()
	select {
	case err := <-exited:
		if err == nil || sleep.ProcessState.String() != "signal: killed" {
			t.Errorf("the container's process ended with %v, want signal: killed", err)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("the container's process still runs 5 s after removeCgroup")
	}
	if exists() {
		t.Errorf("cgroup %s is left after removeCgroup", path)
	}
}

// freezeIn makes cgroup path, moves pid into it and freezes it. exists tells whether the
// cgroup is still there; the cleanup removes what the test leaves.
func freezeIn(t *testing.T, path string, pid int) (exists func() bool) {
	t.Helper()
	if cgroups.Mode() == cgroups.Unified {
		m, err := cgroup2.NewManager("/sys/fs/cgroup", path, &cgroup2.Resources{})
		if err != nil {
			t.Fatalf("make cgroup %s (the test needs root): %v", path, err)
		}
		t.Cleanup(func() { retry(func() error { m.Thaw(); m.Kill(); return m.Delete() }) })
		if err := m.AddProc(uint64(pid)); err != nil {
			t.Fatal(err)
		}
		if err := m.Freeze(); err != nil {
			t.Fatal(err)
		}
		return func() bool {
			_, err := os.Stat(filepath.Join("/sys/fs/cgroup", path))
			return err == nil
		}
	}
	cg, err := cgroup1.New(cgroup1.StaticPath(path), &specs.LinuxResources{})
	if err != nil {
		t.Fatalf("make cgroup %s (the test needs root): %v", path, err)
	}
	t.Cleanup(func() {
		retry(func() error {
			cg.Thaw()
			syscall.Kill(pid, syscall.SIGKILL)
			return cg.Delete()
		})
	})
	if err := cg.Add(cgroup1.Process{Pid: pid}); err != nil {
		t.Fatal(err)
	}
	if err := cg.Freeze(); err != nil {
		t.Fatal(err)
	}
	return func() bool {
		_, err := cgroup1.Load(cgroup1.StaticPath(path))
		return err == nil
	}
}

// retry calls f until it succeeds, for at most 5 seconds.
func retry(f func() error) {
	for deadline := time.Now().Add(5 * time.Second); f() != nil && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
}
