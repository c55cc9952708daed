package state

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestMarkerRoundTrip(t *testing.T) {
	b := t.TempDir()
	if err := ReserveContainer(b); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadContainer(b); !errors.Is(err, ErrNoMarker) {
		t.Fatalf("ReadContainer of a reserved marker: %v, want ErrNoMarker", err)
	}
	want := Container{Pod: "p", Delegate: Delegate{Runtime: "io.containerd.runc.v2", Binary: "/x", Address: "unix:///s", Version: 3, Options: []byte{1, 2}, OptionsType: "t"}}
	if err := WriteContainer(b, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadContainer(b)
	if err != nil || got.Pod != want.Pod || got.Delegate.Address != want.Delegate.Address || got.Delegate.Version != 3 || string(got.Delegate.Options) != string(want.Delegate.Options) {
		t.Fatalf("ReadContainer = %+v, %v; want %+v", got, err, want)
	}
	if _, err := ReadContainer(t.TempDir()); !errors.Is(err, ErrNoMarker) {
		t.Fatalf("ReadContainer of a bundle without marker: %v, want ErrNoMarker", err)
	}
	ents, _ := os.ReadDir(b)
	if len(ents) != 1 {
		t.Fatalf("bundle holds %d files, want only the marker", len(ents))
	}
}

func TestExitRecord(t *testing.T) {
	b := t.TempDir()
	if _, ok := ReadExit(b); ok {
		t.Fatal("ReadExit found a record in an empty bundle")
	}
	if err := WriteExit(b, []byte("resp")); err != nil {
		t.Fatal(err)
	}
	if got, ok := ReadExit(b); !ok || string(got) != "resp" {
		t.Fatalf("ReadExit = %q, %v", got, ok)
	}
}

func TestWriteFileInPlace(t *testing.T) {
	name := filepath.Join(t.TempDir(), "config.json")
	for _, tc := range []struct{ name, data string }{
		{"creates", "a long first version"},
		{"shrinks", "short"},
		{"grows", "a longer third version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := os.Stat(name)
			if err := WriteFileInPlace(name, []byte(tc.data), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(name)
			if err != nil || string(got) != tc.data {
				t.Fatalf("file holds %q, %v; want %q", got, err, tc.data)
			}
			after, _ := os.Stat(name)
			if before != nil && !os.SameFile(before, after) {
				t.Fatal("the write replaced the file's inode")
			}
		})
	}
}

func TestPodMembersAndRemoval(t *testing.T) {
	// The pod folder is under Root; use a unique containerd address so the
	// test owns its folder, and remove it whatever happens.
	addr := filepath.Join(t.TempDir(), "sock")
	dir := PodDir(addr, "ns", "pod")
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(dir)) })

	p, err := LockPod(addr, "ns", "pod")
	if err != nil {
		t.Fatal(err)
	}
	var d struct{ Tier string }
	if ok, err := p.Decision(&d); ok || err != nil {
		t.Fatalf("new pod has a decision: %v %v", ok, err)
	}
	if err := p.SetDecision(struct{ Tier string }{"sandboxed"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		if err := p.AddMember(id); err != nil {
			t.Fatal(err)
		}
	}
	p.Unlock()

	p, err = LockPod(addr, "ns", "pod")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := p.Decision(&d); !ok || err != nil || d.Tier != "sandboxed" {
		t.Fatalf("pod decision = %+v, %v, %v; want sandboxed", d, ok, err)
	}
	if ids, err := p.RemoveMember("a"); len(ids) != 1 || ids[0] != "b" || err != nil {
		t.Fatalf("RemoveMember(a) = %v, %v; want [b] left", ids, err)
	}
	if ids, err := p.RemoveMember("b"); len(ids) != 0 || err != nil {
		t.Fatalf("RemoveMember(b) = %v, %v; want none left", ids, err)
	}
	if err := p.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pod state folders left after the last member: %v", err)
	}
}

func TestLockPodWaitsOutTheLastMembersRemoval(t *testing.T) {
	addr := filepath.Join(t.TempDir(), "sock")
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(PodDir(addr, "ns", "pod"))) })
	last, err := LockPod(addr, "ns", "pod")
	if err != nil {
		t.Fatal(err)
	}
	locked := make(chan *Pod)
	go func() {
		// A container joining the pod while its last member leaves.
		p, err := LockPod(addr, "ns", "pod")
		if err != nil {
			t.Error(err)
		}
		locked <- p
	}()
	time.Sleep(50 * time.Millisecond) // the joiner waits on the lock
	if err := last.Remove(); err != nil {
		t.Fatal(err)
	}
	p := <-locked
	if p == nil {
		return
	}
	defer p.Remove()
	// It holds a pod folder that exists, not the removed one.
	if err := p.SetDecision(struct{}{}); err != nil {
		t.Fatalf("the pod locked after the last member left cannot be written: %v", err)
	}
}

// A router leaving its pod locks the pod only while it exists: the last
// member's `delete` may have removed it, and the router must not make it again.
func TestLockExistingPodOnlyWhileThePodExists(t *testing.T) {
	addr := filepath.Join(t.TempDir(), "sock")
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(PodDir(addr, "ns", "pod"))) })
	if p, err := LockExistingPod(addr, "ns", "pod"); p != nil || err != nil {
		t.Fatalf("LockExistingPod before the pod = %v, %v; want nil, nil", p, err)
	}
	if PodExists(addr, "ns", "pod") {
		t.Fatal("LockExistingPod made the pod folder")
	}
	p, err := LockPod(addr, "ns", "pod")
	if err != nil {
		t.Fatal(err)
	}
	locked := make(chan *Pod)
	go func() {
		p, err := LockExistingPod(addr, "ns", "pod")
		if err != nil {
			t.Error(err)
		}
		locked <- p
	}()
	time.Sleep(50 * time.Millisecond) // it waits on the lock
	if err := p.Remove(); err != nil {
		t.Fatal(err)
	}
	if p := <-locked; p != nil {
		p.Unlock()
		t.Fatal("LockExistingPod locked a pod removed while it waited")
	}
	if PodExists(addr, "ns", "pod") {
		t.Fatal("LockExistingPod made the removed pod folder again")
	}
}
