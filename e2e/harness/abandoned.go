package harness

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// Each daemon's directory is a new folder daemonDirParent/daemonDirPrefix* (unix socket paths
// must stay under 108 bytes, which t.TempDir() paths are not).
const (
	daemonDirParent = "/tmp"
	daemonDirPrefix = "te2e"
)

// ownerFile, in a daemon's directory, names the process that started the daemon as
// "PID STARTTIME" (STARTTIME from /proc/PID/stat, so that a reused PID is not taken for it).
const ownerFile = "owner"

// writeOwner records the calling process as the owner of dir.
func writeOwner(dir string) error {
	start, ok := startTime(os.Getpid())
	if !ok {
		return errors.New("read this process's start time from /proc/self/stat")
	}
	return os.WriteFile(filepath.Join(dir, ownerFile), fmt.Appendf(nil, "%d %s\n", os.Getpid(), start), 0o644)
}

// startTime is field 22 of /proc/PID/stat: when the process started, in clock ticks after boot.
// ok is false when the process is gone or has exited (a zombie: a killed test binary stays one
// until its parent reaps it).
func startTime(pid int) (start string, ok bool) {
	_, fields, ok := readStat(pid)
	if !ok || len(fields) < 20 || fields[0] == "Z" || fields[0] == "X" {
		return "", false
	}
	return fields[19], true
}

// abandoned reports whether dir is a daemon directory whose owner is gone. A directory without
// an owner file is not: it is being made, or not the harness's.
func abandoned(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		return false
	}
	var pid int
	var start string
	if _, err := fmt.Sscan(string(b), &pid, &start); err != nil {
		return false
	}
	now, alive := startTime(pid)
	return !alive || now != start
}

// sweepOnce runs sweepAbandoned once per process, before its first daemon starts: parallel tests
// would otherwise tear the same directory down at once.
var sweepOnce sync.Once

// sweepAbandoned tears down the daemon directories of runs that ended before their cleanups ran
// (a test binary killed by its timeout, Ctrl-C, SIGKILL): their containerd, shims, Triage
// daemons and containers, mounts, runc state and cgroups, as a cleanup would have.
func sweepAbandoned(t T) {
	dirs, _ := filepath.Glob(filepath.Join(daemonDirParent, daemonDirPrefix+"*")) // a valid pattern
	for _, dir := range dirs {
		if !abandoned(dir) {
			continue
		}
		d := &Daemon{layout: layout{dir: dir}}
		if errs := d.teardown(); len(errs) > 0 {
			t.Logf("remove what an interrupted run left in %s: %v", dir, errors.Join(errs...))
			continue
		}
		t.Logf("removed what an interrupted run left in %s", dir)
	}
}
