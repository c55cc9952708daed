package harness

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// privateRunScript runs as `sh -c SCRIPT RUNDIR CONTAINERD ARGS...` in a fresh, private mount
// namespace: it binds RUNDIR over /run and execs containerd, which keeps its pid and command line.
const privateRunScript = `mount --bind "$0" /run && exec "$@"`

// runDir is the folder bound over /run in a daemon's private mount namespace.
func (l layout) runDir() string { return l.path("run") }

// syslogLog is where the syslog sink of a private /run writes what it receives.
func (l layout) syslogLog() string { return l.path("syslog.log") }

// privateRunCommand returns the argv that starts bin with args in a private mount namespace
// whose /run is l.runDir().
func privateRunCommand(l layout, bin string, args ...string) []string {
	return append([]string{"unshare", "--mount", "--propagation", "private",
		"/bin/sh", "-c", privateRunScript, l.runDir(), bin}, args...)
}

// syslogSink is a datagram socket at <run>/syslog (/var/run/syslog in the namespace) whose
// messages are appended to a file. Kata's config loader refuses to start without a syslog
// socket ("Unix syslog delivery error"), and a socket nobody reads would block its writes.
type syslogSink struct {
	conn *net.UnixConn
	done chan struct{} // closed when the copy loop has ended
}

func startSyslogSink(l layout) (*syslogSink, error) {
	if err := os.MkdirAll(l.runDir(), 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(l.runDir(), "syslog")
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("syslog sink: %w", err)
	}
	out, err := os.OpenFile(l.syslogLog(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		conn.Close()
		return nil, err
	}
	s := &syslogSink{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer out.Close()
		buf := make([]byte, 64<<10+1) // one spare byte for the newline
		for {
			n, err := conn.Read(buf[:len(buf)-1])
			if err != nil {
				return // closed by stop
			}
			if n > 0 && buf[n-1] != '\n' {
				buf[n] = '\n'
				n++
			}
			_, _ = out.Write(buf[:n])
		}
	}()
	return s, nil
}

// stop closes the socket (removing its file) and waits for the copy loop.
func (s *syslogSink) stop() error {
	if s == nil {
		return nil
	}
	err := s.conn.Close()
	<-s.done
	return err
}
