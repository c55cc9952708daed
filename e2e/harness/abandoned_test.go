package harness

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestSweepAbandoned: a daemon directory whose owner is gone is torn down, processes included;
// one whose owner runs is left alone, and so are the processes of a directory whose name merely
// starts like the abandoned one's.
func TestSweepAbandoned(t *testing.T) {
	gone := daemonDir(t, "")
	// No process has this PID: pid_max is at most 2^22.
	if err := os.WriteFile(filepath.Join(gone, ownerFile), []byte("2147483647 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	kept := daemonDir(t, filepath.Base(gone)+"1") // /tmp/te2eN1 beside /tmp/te2eN
	if err := writeOwner(kept); err != nil {
		t.Fatal(err)
	}
	inGone := background(t, gone, "sleep", "600")
	mentionsKept := background(t, "/", "tail", "-f", "/dev/null", filepath.Join(kept, ownerFile))

	sweepAbandoned(&Program{})

	if running(inGone) {
		t.Errorf("the abandoned directory's process %d was not killed", inGone.Process.Pid)
	}
	if _, err := os.Stat(gone); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the abandoned directory %s is still there (stat: %v)", gone, err)
	}
	if _, err := os.Stat(filepath.Join(kept, ownerFile)); err != nil {
		t.Errorf("the directory of a running owner was touched: %v", err)
	}
	if !running(mentionsKept) {
		t.Errorf("the process of %s, whose name starts like %s, was killed", kept, gone)
	}
}

// daemonDir makes a daemon directory named name (a random one when empty) and removes it
// after the test.
func daemonDir(t *testing.T, name string) string {
	t.Helper()
	var dir string
	var err error
	if name == "" {
		dir, err = os.MkdirTemp(daemonDirParent, daemonDirPrefix)
	} else {
		dir = filepath.Join(daemonDirParent, name)
		err = os.Mkdir(dir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// background starts a command in dir, killed after the test if it still runs.
func background(t *testing.T, dir string, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// running reports whether cmd's process runs: a killed child stays a zombie until waited for.
func running(cmd *exec.Cmd) bool {
	p, ok := readProc(cmd.Process.Pid)
	return ok && p.state != "Z"
}
