package state

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Root is where per-pod state lives; one subfolder per containerd instance
// (keyed by its socket address) so that several daemons never share state.
const Root = "/run/triage"

// Pod is the state folder of one pod (group of containers served by one
// router): its decision and its members. Callers hold its lock while they
// read or change it.
//
// The folder holds as few files as it can: creating an inode is what a
// start spends most of its time on in triage-shimd when /run is a busy disk
// filesystem (ext4 here, without a journal: under the churn of pod starts
// it skips every inode freed in the last seconds, and an inode takes
// 0.5-2 ms to make; 40% of the daemon's CPU in a 20-pod burst). The folder
// itself is the lock, and each member is a hard link to the decision, which
// costs no inode.
type Pod struct {
	dir  string
	lock *os.File
}

// decisionName is the pod's decision; memberPrefix starts the name of each
// member's link to it.
const (
	decisionName = "decision.json"
	memberPrefix = "member."
)

// PodDir is the state folder of pod in namespace ns of the containerd at
// address: one level under the containerd's folder, as each folder made
// costs an inode. Both names are containerd identifiers, which have no '@'
// (the caller checks pod's; containerd checks namespaces).
func PodDir(address, ns, pod string) string {
	return filepath.Join(ContainerdDir(address), ns+"@"+pod)
}

// ContainerdDir holds the pod folders of the containerd at address. It goes
// with its last pod.
func ContainerdDir(address string) string {
	h := sha256.Sum256([]byte(address))
	return filepath.Join(Root, hex.EncodeToString(h[:6]))
}

// PodExists tells whether pod has a state folder: a container of it has
// started, or is starting.
func PodExists(address, ns, pod string) bool {
	_, err := os.Stat(PodDir(address, ns, pod))
	return err == nil
}

// LockPod opens (creating if needed) and locks the pod folder. Unlock
// releases it.
func LockPod(address, ns, pod string) (*Pod, error) {
	return lockPod(PodDir(address, ns, pod), true)
}

// LockExistingPod locks the pod folder if it exists: it returns nil when the
// pod has ended (its last member's `delete` removed the folder).
func LockExistingPod(address, ns, pod string) (*Pod, error) {
	p, err := lockPod(PodDir(address, ns, pod), false)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return p, err
}

func lockPod(dir string, create bool) (*Pod, error) {
	for {
		if create {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, err
			}
		}
		f, err := os.Open(dir)
		if err != nil {
			return nil, err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", dir, err)
		}
		// The last member may have removed the folder while this waited
		// for the lock: lock the new one.
		held, err1 := f.Stat()
		cur, err2 := os.Stat(dir)
		if err1 == nil && err2 == nil && os.SameFile(held, cur) {
			return &Pod{dir: dir, lock: f}, nil
		}
		f.Close()
		if err2 != nil && (!create || !errors.Is(err2, os.ErrNotExist)) {
			return nil, err2
		}
	}
}

// Unlock releases the pod lock.
func (p *Pod) Unlock() { p.lock.Close() }

// Decision reads the pod's decision (JSON) into d; ok is false before the
// first container of the pod was classified.
func (p *Pod) Decision(d any) (ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(p.dir, decisionName))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, d); err != nil {
		return false, fmt.Errorf("pod decision %s: %w", p.dir, err)
	}
	return true, nil
}

// SetDecision records the pod's decision, as JSON.
func (p *Pod) SetDecision(d any) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(p.dir, decisionName), b, 0o600)
}

// AddMember records a container as part of the pod, which has a decision.
func (p *Pod) AddMember(id string) error {
	err := os.Link(filepath.Join(p.dir, decisionName), p.member(id))
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	return err
}

// HasMember tells, without the lock, whether container id is a member of
// pod: once its router forgot it (at its Shutdown), its `delete` has
// nothing left to do there.
func HasMember(address, ns, pod, id string) bool {
	_, err := os.Lstat(filepath.Join(PodDir(address, ns, pod), memberPrefix+filepath.Base(id)))
	return err == nil
}

// Members lists the containers of the pod.
func (p *Pod) Members() ([]string, error) {
	ents, err := os.ReadDir(p.dir)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range ents {
		if id, ok := strings.CutPrefix(e.Name(), memberPrefix); ok {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// RemoveMember forgets a container and lists those that remain.
func (p *Pod) RemoveMember(id string) (remaining []string, err error) {
	if err := os.Remove(p.member(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return p.Members()
}

// Clear forgets the pod's decision and members, keeping the folder and its lock: the
// pod starts again.
func (p *Pod) Clear() error {
	ents, err := os.ReadDir(p.dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.Remove(filepath.Join(p.dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Remove deletes the pod's state folder (and the containerd's when empty).
// The lock is released.
func (p *Pod) Remove() error {
	err := os.RemoveAll(p.dir)
	p.Unlock()
	os.Remove(filepath.Dir(p.dir)) // fails harmlessly when in use
	return err
}

func (p *Pod) member(id string) string {
	return filepath.Join(p.dir, memberPrefix+filepath.Base(id))
}

// CountPods counts the pods every containerd's Triage serves on this node, by the tier of
// their decision (JSON with a "tier").
func CountPods() map[string]int {
	counts := map[string]int{}
	files, _ := filepath.Glob(filepath.Join(Root, "*", "*@*", decisionName))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var d struct {
			Tier string `json:"tier"`
		}
		if json.Unmarshal(b, &d) == nil && d.Tier != "" {
			counts[d.Tier]++
		}
	}
	return counts
}
