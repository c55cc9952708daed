package policy

import (
	"bytes"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Cache keeps compiled policies for a process that loads them again and
// again (triage-shimd, at every container start). A policy is compiled
// again when its text or a seccomp profile file it names has changed. A
// Policy is read-only once loaded: one is shared by concurrent starts.
type Cache struct {
	// OnLoad, if set, is told of every policy text the cache compiles (a new or changed
	// one), with the result, and the policy it last compiled under that name (nil if none),
	// whose settings still apply when the new text fails.
	OnLoad func(name string, pol, last *Policy, err error)

	mu      sync.Mutex
	entries map[string]cached // by source name
}

type cached struct {
	data     []byte
	profiles []fileStamp
	pol      *Policy
}

// racyWindow: a file modified this recently may change again unseen.
const racyWindow = time.Second

// fileStamp tells a file's version apart: its inode, size and mtime.
type fileStamp struct {
	path  string
	ino   uint64
	size  int64
	mtime time.Time
}

// Load is Load, through the cache.
func (c *Cache) Load(path string) (*Policy, error) {
	data, err := read(path)
	if err != nil {
		return nil, err
	}
	return c.Parse(path, data)
}

// Parse is Parse, through the cache.
func (c *Cache) Parse(name string, data []byte) (*Policy, error) {
	c.mu.Lock()
	e, ok := c.entries[name]
	c.mu.Unlock()
	if ok && bytes.Equal(e.data, data) && slices.EqualFunc(e.profiles, stampProfiles(e.pol), func(a, b fileStamp) bool {
		return a.path == b.path && a.ino == b.ino && a.size == b.size && a.mtime.Equal(b.mtime)
	}) {
		return e.pol, nil
	}
	pol, err := Parse(name, data)
	if c.OnLoad != nil {
		c.OnLoad(name, pol, e.pol, err)
	}
	if err != nil {
		return nil, err
	}
	stamps := stampProfiles(pol)
	// A profile written in the last second may have changed after it was
	// read with the same stamp (as git's racy index): not kept.
	if slices.ContainsFunc(stamps, func(s fileStamp) bool { return time.Since(s.mtime) < racyWindow }) {
		return pol, nil
	}
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]cached{}
	}
	c.entries[name] = cached{data: bytes.Clone(data), profiles: stamps, pol: pol}
	c.mu.Unlock()
	return pol, nil
}

// stampProfiles stamps the seccomp profile files p's tiers name, in tier
// order; a file that cannot be read stamps as zero.
func stampProfiles(p *Policy) []fileStamp {
	var stamps []fileStamp
	for _, name := range p.TierNames() {
		h := p.Tiers[name].Hardening
		if h == nil || !h.Seccomp.IsFile() {
			continue
		}
		s := fileStamp{path: string(h.Seccomp)}
		if fi, err := os.Stat(s.path); err == nil {
			s.size, s.mtime = fi.Size(), fi.ModTime()
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				s.ino = st.Ino
			}
		}
		stamps = append(stamps, s)
	}
	return stamps
}
