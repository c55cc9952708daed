package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

const (
	readyTimeout = 30 * time.Second
	// stopGrace is how long a daemon gets between SIGTERM and SIGKILL.
	stopGrace = 10 * time.Second
	// logTail is how many lines of the daemon log a failed test prints.
	logTail = 200
)

// Daemon is one private containerd. Its methods may be called from one goroutine at a time.
type Daemon struct {
	version  Version
	env      Env
	layout   layout
	path     string      // the daemon's PATH
	extraEnv []string    // extra environment of the daemon (Options.Env)
	private  bool        // Options.PrivateRun
	syslog   *syslogSink // serves <RunDir>/syslog when private
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd has been waited for
}

// StartContainerd starts a private containerd of the given version, waits until it answers,
// imports BusyboxImage and PauseImage into the default and k8s.io namespaces, and registers a
// cleanup that stops it and removes everything it and its containers left under Dir (and nothing
// outside it). When the test failed, the cleanup first logs the tail of the daemon's log. It
// first removes what runs killed before their cleanups left behind (see sweepAbandoned).
func StartContainerd(t T, env Env, v Version, opts Options) *Daemon {
	t.Helper()
	if v != V16 && v != V2 {
		t.Fatalf("StartContainerd: unknown %v; use harness.V16 or harness.V2", v)
	}
	sweepOnce.Do(func() { sweepAbandoned(t) })
	// Unix socket paths must stay under 108 bytes; t.TempDir() paths are too long for the shims'.
	dir, err := os.MkdirTemp(daemonDirParent, daemonDirPrefix)
	if err != nil {
		t.Fatalf("StartContainerd: %v", err)
	}
	if err := writeOwner(dir); err != nil {
		os.Remove(dir)
		t.Fatalf("StartContainerd: %v", err)
	}
	d := &Daemon{version: v, env: env, layout: layout{dir: dir}, path: daemonPath(v, env, opts),
		extraEnv: opts.Env, private: opts.PrivateRun}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%v log (%s), last %d lines:\n%s", v, d.layout.log(), logTail, tail(d.Log(), logTail))
		}
		for _, err := range d.teardown() {
			t.Errorf("teardown of %v in %s: %v", v, dir, err)
		}
	})
	if err := prepareDir(v, env, d.layout, opts); err != nil {
		t.Fatalf("StartContainerd: %v", err)
	}
	if d.private {
		if d.syslog, err = startSyslogSink(d.layout); err != nil {
			t.Fatalf("StartContainerd: %v", err)
		}
	}
	if err := d.start(); err != nil {
		t.Fatalf("start %v: %v", v, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	for _, ns := range []string{"default", "k8s.io"} {
		for _, tar := range []string{env.BusyboxTar, env.PauseTar} {
			if _, stderr, code, err := d.Ctr(ctx, "-n", ns, "images", "import", tar); err != nil || code != 0 {
				t.Fatalf("%v: import %s into namespace %s: exit %d, %v: %s", v, tar, ns, code, err, stderr)
			}
		}
	}
	return d
}

// start runs the daemon and waits until `ctr version` answers.
func (d *Daemon) start() error {
	logf, err := os.OpenFile(d.layout.log(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	bin := d.env.Ctrd2Bin
	if d.version == V16 {
		bin = d.env.Ctrd16Bin
	}
	argv := []string{bin, "--config", d.layout.config()}
	if d.private {
		argv = privateRunCommand(d.layout, argv[0], argv[1:]...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append(os.Environ(), d.extraEnv...), "PATH="+d.path)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Die with the test binary if it is killed (go test -timeout) before cleanups run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status is in the log; a daemon we did not stop fails readiness
		close(exited)
	}()
	d.cmd, d.exited = cmd, exited

	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	var lastErr string
	for {
		_, stderr, code, err := d.Ctr(ctx, "version")
		if err == nil && code == 0 {
			return nil
		}
		lastErr = fmt.Sprintf("exit %d, %v: %s", code, err, stderr)
		select {
		case <-exited:
			return fmt.Errorf("containerd exited during startup (see %s):\n%s", d.layout.log(), tail(d.Log(), 30))
		case <-ctx.Done():
			return fmt.Errorf("containerd not ready after %v (last `ctr version`: %s); see %s",
				readyTimeout, lastErr, d.layout.log())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop ends the daemon by PID: SIGTERM, then SIGKILL after stopGrace. Shims keep running.
func (d *Daemon) stop() error {
	if d.cmd == nil {
		return nil
	}
	defer func() { d.cmd = nil }()
	select {
	case <-d.exited:
		return nil
	default:
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-d.exited:
		return nil
	case <-time.After(stopGrace):
	}
	if err := d.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-d.exited
	return fmt.Errorf("containerd pid %d ignored SIGTERM for %v and was killed", d.cmd.Process.Pid, stopGrace)
}

// Restart stops the daemon by PID and starts it again with the same config, root and state, so
// a test can check how running shims are reconnected.
func (d *Daemon) Restart(t T) {
	t.Helper()
	if err := d.stop(); err != nil {
		t.Fatalf("restart %v: %v", d.version, err)
	}
	if err := d.start(); err != nil {
		t.Fatalf("restart %v: %v", d.version, err)
	}
}

// Ctr runs the version's ctr against this daemon (namespace default unless args say -n NS).
// err reports only a failure to run ctr; a non-zero exit is in exit.
func (d *Daemon) Ctr(ctx context.Context, args ...string) (stdout, stderr string, exit int, err error) {
	return d.run(ctx, d.ctr(), append([]string{"-a", d.layout.socket()}, args...)...)
}

// CtrCommand is a ctr command against this daemon, for output read as it comes (ctr events).
func (d *Daemon) CtrCommand(ctx context.Context, args ...string) *exec.Cmd {
	cmd := d.Command(ctx, d.ctr(), append([]string{"-a", d.layout.socket()}, args...)...)
	cmd.Env = append(cmd.Env, "CONTAINERD_NAMESPACE=default")
	return cmd
}

// ctr is the version's ctr binary.
func (d *Daemon) ctr() string {
	if d.version == V16 {
		return d.env.Ctr16
	}
	return d.env.Ctr2
}

// Crictl runs crictl against this daemon's CRI. err reports only a failure to run crictl.
func (d *Daemon) Crictl(ctx context.Context, args ...string) (stdout, stderr string, exit int, err error) {
	return d.run(ctx, d.env.Crictl, append([]string{"--config", d.layout.crictlConfig()}, args...)...)
}

// Nerdctl runs nerdctl against this daemon with the given global flags first (its own data
// root, say). err reports only a failure to run nerdctl.
func (d *Daemon) Nerdctl(ctx context.Context, args ...string) (stdout, stderr string, exit int, err error) {
	return d.run(ctx, d.env.Nerdctl, append([]string{"--address", d.layout.socket()}, args...)...)
}

// Command returns a command that runs bin with the daemon's PATH and, when the daemon has a
// private /run (Options.PrivateRun), in its mount namespace.
func (d *Daemon) Command(ctx context.Context, bin string, args ...string) *exec.Cmd {
	if d.private && d.cmd != nil {
		args = append([]string{fmt.Sprintf("--mount=/proc/%d/ns/mnt", d.cmd.Process.Pid), "--", bin}, args...)
		bin = "nsenter"
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "PATH="+d.path)
	return cmd
}

func (d *Daemon) run(ctx context.Context, bin string, args ...string) (string, string, int, error) {
	var stdout, stderr bytes.Buffer
	cmd := d.Command(ctx, bin, args...)
	cmd.Env = append(cmd.Env, "CONTAINERD_NAMESPACE=default")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if exitErr := (*exec.ExitError)(nil); errors.As(err, &exitErr) && ctx.Err() == nil {
		return stdout.String(), stderr.String(), exitErr.ExitCode(), nil
	}
	if err != nil {
		return stdout.String(), stderr.String(), -1, fmt.Errorf("%s %s: %w", bin, strings.Join(args, " "), err)
	}
	return stdout.String(), stderr.String(), 0, nil
}

// ID returns a container ID for name that no other daemon on the host uses. Use it for ctr:
// runc keeps the state of containers started without runtime options in the host-wide
// /run/containerd/runc/<namespace>/<id> and puts them in the cgroup /<namespace>/<id>, so two
// daemons running "t1" at once would collide. Teardown removes those leftovers for IDs from here.
func (d *Daemon) ID(name string) string { return name + "-" + d.layout.suffix() }

// PID is the running daemon's process id, or 0 while it is stopped.
func (d *Daemon) PID() int {
	if d.cmd == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// Version is the daemon's containerd version.
func (d *Daemon) Version() Version { return d.version }

// Dir is the temporary directory that holds everything of this daemon.
func (d *Daemon) Dir() string { return d.layout.dir }

// Root is containerd's root directory (persistent data: content, snapshots, metadata).
func (d *Daemon) Root() string { return d.layout.root() }

// State is containerd's state directory (task bundles, network namespaces).
func (d *Daemon) State() string { return d.layout.state() }

// Address is the daemon's gRPC socket.
func (d *Daemon) Address() string { return d.layout.socket() }

// RunDir is the host folder the daemon sees as /run (Options.PrivateRun), or "" when the daemon
// shares the host's /run.
func (d *Daemon) RunDir() string {
	if !d.private {
		return ""
	}
	return d.layout.runDir()
}

// RunscConfig is the runsc handler's config file, usable with ctr --runtime-config-path.
func (d *Daemon) RunscConfig() string { return d.layout.runscConfig() }

// Log returns the daemon's log so far (stdout and stderr, across restarts).
func (d *Daemon) Log() string {
	b, err := os.ReadFile(d.layout.log())
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
