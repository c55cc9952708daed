package harness

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/triage-runtime/triage/shim/state"
)

// killTimeout bounds how long teardown waits for killed processes to disappear.
const killTimeout = 10 * time.Second

// teardown stops the daemon, then kills every process, unmounts every mount and removes every
// file of it and its containers, all found through its directory. Outside it, it removes only
// what is provably the daemon's: sockets its processes held in the shared socket folders
// (HostShimSocketDir, TriageSocketDir), runc state and cgroups of containers named with
// Daemon.ID, and Triage's pod state for its address (state.ContainerdDir).
func (d *Daemon) teardown() []error {
	dir := d.layout.dir
	var errs []error
	if err := d.stop(); err != nil {
		errs = append(errs, err)
	}
	if err := killProcs(dir); err != nil {
		errs = append(errs, err)
	}
	if err := d.syslog.stop(); err != nil {
		errs = append(errs, err)
	}
	if err := unmountAll(dir); err != nil {
		// Never remove files through a mount that is still there: it may be a host directory.
		return append(errs, fmt.Errorf("%w; left %s in place", err, dir))
	}
	if err := removeHostState(d.layout.suffix()); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(state.ContainerdDir(d.layout.socket())); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// killProcs SIGKILLs the processes of dir until none is left, then removes the sockets they
// held in the shared socket folders.
func killProcs(dir string) error {
	var heldSockets []string
	deadline := time.Now().Add(killTimeout)
	for {
		procs, err := procsOf(dir)
		if err != nil {
			return err
		}
		var alive []proc
		for _, p := range procs {
			if p.state != "Z" { // zombies go away with their killed parent
				alive = append(alive, p)
			}
		}
		if len(alive) == 0 {
			break
		}
		if held, _, err := sockets(dir, alive, sharedSocketDirs); err == nil {
			for _, s := range held {
				if slices.Contains(sharedSocketDirs, filepath.Dir(s)) && !slices.Contains(heldSockets, s) {
					heldSockets = append(heldSockets, s)
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes of %s survive SIGKILL for %v: %v", dir, killTimeout, alive)
		}
		for _, p := range alive {
			_ = syscall.Kill(p.pid, syscall.SIGKILL) // it may have exited since the scan
		}
		time.Sleep(50 * time.Millisecond)
	}
	var errs []error
	for _, s := range heldSockets {
		if err := os.Remove(s); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// unmountAll lazily unmounts everything under dir, innermost first, until nothing is left.
func unmountAll(dir string) error {
	for range 10 {
		mounts, err := mountsUnder(dir)
		if err != nil {
			return err
		}
		if len(mounts) == 0 {
			return nil
		}
		for _, m := range slices.Backward(mounts) {
			_ = syscall.Unmount(m, syscall.MNT_DETACH) // rechecked by the next scan
		}
	}
	mounts, err := mountsUnder(dir)
	if err == nil && len(mounts) > 0 {
		err = fmt.Errorf("cannot unmount under %s: %s", dir, strings.Join(mounts, ", "))
	}
	return err
}
