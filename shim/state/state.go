// Package state persists Triage's decisions so that `delete`, containerd
// restarts and later containers of a pod all see the decision made at start:
// a marker file in each container's bundle, and a folder per pod.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/triage-runtime/triage/hardening/execrule"
)

// markerName is the bundle file that records how a container was routed.
const markerName = "triage.json"

// Delegate records the delegate shim a container was handed to.
type Delegate struct {
	Runtime string `json:"runtime"`
	Binary  string `json:"binary"`
	Address string `json:"address"`
	Version int    `json:"version"`
	// Options is the marshalled Any Triage built for the delegate; Create
	// sends exactly these.
	Options []byte `json:"options,omitempty"`
	// OptionsType is the Any's type URL.
	OptionsType string `json:"options_type,omitempty"`
	// Hosted is set for a runc tier: the pod's router runs the container
	// through containerd's runc task service in its own process, and
	// Binary and Address are empty.
	Hosted bool `json:"hosted,omitempty"`
}

// Container is the bundle marker. (The decision itself is in the spec's
// triage.io/decision annotation and in the audit log.)
type Container struct {
	// Pod is the group key: the sandbox id, the runc group, or the id.
	Pod      string   `json:"pod"`
	Delegate Delegate `json:"delegate"`
	// Exec are the rules every exec into the container follows.
	Exec execrule.Rules `json:"exec"`
	// Metrics is the policy's metrics_textfile when the container started ("" for none),
	// which its delete updates.
	Metrics string `json:"metrics,omitempty"`
}

// ErrNoMarker is returned when a bundle has no Triage marker, or an empty
// one: Triage's start never got as far as starting a delegate for it.
var ErrNoMarker = errors.New("no triage marker in bundle")

// ReserveContainer makes bundle's marker, empty, so that WriteContainer
// creates no inode (see Pod) once the delegate has replied. An empty marker
// reads as none.
func ReserveContainer(bundle string) error {
	f, err := os.OpenFile(filepath.Join(bundle, markerName), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

// WriteContainer records c in bundle. It is written in place: the marker is
// read once start has returned, or by another start under the pod's lock,
// which start holds while it writes.
func WriteContainer(bundle string, c Container) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode marker: %w", err)
	}
	return WriteFileInPlace(filepath.Join(bundle, markerName), b, 0o600)
}

// ReadContainer reads the marker of bundle.
func ReadContainer(bundle string) (Container, error) {
	var c Container
	b, err := os.ReadFile(filepath.Join(bundle, markerName))
	if errors.Is(err, os.ErrNotExist) || err == nil && len(b) == 0 {
		return c, fmt.Errorf("%s: %w", bundle, ErrNoMarker)
	}
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("marker %s: %w", filepath.Join(bundle, markerName), err)
	}
	return c, nil
}

// ReadSpec reads the OCI spec of bundle.
func ReadSpec(bundle string) (*specs.Spec, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, err
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(bundle, "config.json"), err)
	}
	return &s, nil
}

// WriteFileAtomic replaces name with data so that readers never see a torn
// file: write a temporary file beside it, then rename.
func WriteFileAtomic(name string, data []byte, perm os.FileMode) (retErr error) {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	// No fsync: this is runtime state under /run, gone at reboot anyway.
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}

// WriteFileInPlace replaces the contents of name (creating it with perm if
// needed) without a new inode: for a file that no one reads while it is
// written. Creating inodes is the costly part of writing state on a busy
// disk filesystem (see Pod).
//
// It overwrites and then cuts the file to length rather than open it with
// O_TRUNC: ext4 (auto_da_alloc, its default) flushes a file that was
// truncated to zero when it is closed, which costs 220 µs here against 20.
func WriteFileInPlace(name string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE, perm)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(data, 0)
	if err == nil {
		err = f.Truncate(int64(len(data)))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// exitName is the bundle file holding the DeleteResponse of a container the
// router deleted cleanly through its delegate.
const exitName = "triage-exit.pb"

// WriteExit records the delegate's reply to a clean Delete of the container.
func WriteExit(bundle string, resp []byte) error {
	return WriteFileAtomic(filepath.Join(bundle, exitName), resp, 0o600)
}

// ReadExit returns the reply WriteExit recorded; ok is false when the
// container was not deleted cleanly (its router or delegate died).
func ReadExit(bundle string) (resp []byte, ok bool) {
	b, err := os.ReadFile(filepath.Join(bundle, exitName))
	return b, err == nil
}
