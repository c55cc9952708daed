package harness

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// proc is one process found in /proc.
type proc struct {
	pid, ppid int
	comm      string // the executable's name, from /proc/PID/stat
	state     string // R, S, D, Z, ... from /proc/PID/stat
	cmdline   string // empty for kernel threads, zombies and gVisor's systrap stubs
	cwd       string
}

func (p proc) String() string {
	return fmt.Sprintf("pid %d [%s]: %s", p.pid, p.comm, p.cmdline)
}

// under reports whether path is dir or inside it.
func under(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// mentions reports whether an argument of cmdline is dir or a path in it (its socket, as
// unix://DIR/…, say), and not merely starts like it: /tmp/te2e12 does not claim /tmp/te2e123.
func mentions(cmdline, dir string) bool {
	for _, arg := range strings.Fields(cmdline) {
		if strings.HasSuffix(arg, dir) || strings.Contains(arg, dir+"/") {
			return true
		}
	}
	return false
}

// readStat reads /proc/PID/stat: the executable's name, and the fields after it (fields[0] is
// the state, field 3 of proc(5)). ok is false when the process is gone or the file unreadable.
func readStat(pid int) (comm string, fields []string, ok bool) {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return "", nil, false
	}
	// stat is "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
	open, end := strings.IndexByte(string(stat), '('), strings.LastIndexByte(string(stat), ')')
	if open < 0 || end < open {
		return "", nil, false
	}
	fields = strings.Fields(string(stat[end+1:]))
	return string(stat[open+1 : end]), fields, len(fields) >= 2
}

// readProc reads one process; ok is false when it is gone or unreadable.
func readProc(pid int) (p proc, ok bool) {
	comm, fields, ok := readStat(pid)
	if !ok {
		return p, false
	}
	base := filepath.Join("/proc", strconv.Itoa(pid))
	p.pid, p.comm, p.state = pid, comm, fields[0]
	p.ppid, _ = strconv.Atoi(fields[1])
	cmdline, _ := os.ReadFile(filepath.Join(base, "cmdline"))
	p.cmdline = strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))
	p.cwd, _ = os.Readlink(filepath.Join(base, "cwd"))
	return p, true
}

// procsOf returns the processes whose command line or working directory mention dir, and all
// their descendants (container processes run in their own root, but are children of a shim).
// The calling process is never included.
func procsOf(dir string) ([]proc, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var all []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if p, ok := readProc(pid); ok {
			all = append(all, p)
		}
	}
	mine := map[int]bool{}
	for _, p := range all {
		if mentions(p.cmdline, dir) || under(p.cwd, dir) {
			mine[p.pid] = true
		}
	}
	// Add descendants until nothing changes; parents may come after children in /proc order.
	for grown := true; grown; {
		grown = false
		for _, p := range all {
			if !mine[p.pid] && mine[p.ppid] {
				mine[p.pid], grown = true, true
			}
		}
	}
	var out []proc
	for _, p := range all {
		if mine[p.pid] {
			out = append(out, p)
		}
	}
	return out, nil
}

// socketInodes returns the inodes of the sockets the given processes hold open.
func socketInodes(procs []proc) map[string]bool {
	inodes := map[string]bool{}
	for _, p := range procs {
		fdDir := filepath.Join("/proc", strconv.Itoa(p.pid), "fd")
		fds, _ := os.ReadDir(fdDir) // the process may be gone
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if inode, ok := strings.CutPrefix(target, "socket:["); err == nil && ok {
				inodes[strings.TrimSuffix(inode, "]")] = true
			}
		}
	}
	return inodes
}

// ownMountNS reports whether pid runs in a mount namespace other than the caller's.
func ownMountNS(pid int) bool {
	self, err1 := os.Readlink("/proc/self/ns/mnt")
	other, err2 := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "ns", "mnt"))
	return err1 == nil && err2 == nil && self != other
}

// fdTargets lists what pid's open file descriptors point to: paths, and kinds without their
// inode ("socket", "pipe", "anon_inode:[eventpoll]").
func fdTargets(pid int) ([]string, error) {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	fds, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, fd := range fds {
		t, err := os.Readlink(filepath.Join(dir, fd.Name()))
		if err != nil {
			continue // closed since the listing
		}
		if kind, _, ok := strings.Cut(t, ":["); ok && (kind == "socket" || kind == "pipe") {
			t = kind
		}
		out = append(out, t)
	}
	return out, nil
}

// unixSocket is one bound unix socket from /proc/net/unix (the host network namespace's).
type unixSocket struct {
	inode, path string
}

func boundUnixSockets() ([]unixSocket, error) {
	f, err := os.Open("/proc/net/unix")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []unixSocket
	sc := bufio.NewScanner(f)
	sc.Scan() // header: Num RefCount Protocol Flags Type St Inode Path
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 8 && strings.HasPrefix(fields[7], "/") {
			out = append(out, unixSocket{inode: fields[6], path: fields[7]})
		}
	}
	return out, sc.Err()
}

// mountsUnder returns the mount points at or under dir, in mount order.
func mountsUnder(dir string) ([]string, error) {
	return mountsIn("/proc/self/mountinfo", func(mp string) bool { return under(mp, dir) })
}

// mountsIn returns the mount points of a mountinfo file that keep holds, in mount order.
func mountsIn(mountinfo string, keep func(string) bool) ([]string, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		if mp := unescapeMountinfo(fields[4]); keep(mp) {
			out = append(out, mp)
		}
	}
	return out, sc.Err()
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for space, \011, \012, \134).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// sortedKeys returns m's keys that are true, sorted.
func sortedKeys(m map[string]bool) []string {
	var out []string
	for k, v := range m {
		if v {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
