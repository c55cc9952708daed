// Package delegate starts, reaches and deletes the real runtime shims Triage
// hands workloads to (runc, gVisor's runsc, Kata), speaking each one's own
// start protocol and task API version.
package delegate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrShimNotFound is returned when a tier's delegate shim binary is missing.
var ErrShimNotFound = errors.New("delegate shim not found")

// BinaryName maps a containerd runtime type to its shim binary name the way
// containerd does: io.containerd.runsc.v1 -> containerd-shim-runsc-v1.
func BinaryName(runtimeType string) (string, error) {
	parts := strings.Split(runtimeType, ".")
	if len(parts) < 2 || parts[len(parts)-2] == "" || parts[len(parts)-1] == "" {
		return "", fmt.Errorf("runtime type %q is not of the form io.containerd.NAME.VERSION", runtimeType)
	}
	return fmt.Sprintf("containerd-shim-%s-%s", parts[len(parts)-2], parts[len(parts)-1]), nil
}

// Resolve finds the delegate shim for runtimeType: shimPath when set (it must
// be absolute), else the binary next to Triage's own executable, else on
// $PATH, else next to containerd (publishBinary).
func Resolve(runtimeType, shimPath, publishBinary string) (string, error) {
	if shimPath != "" {
		if !filepath.IsAbs(shimPath) {
			return "", fmt.Errorf("shim_path %q must be absolute", shimPath)
		}
		if err := executable(shimPath); err != nil {
			return "", fmt.Errorf("%w: %v: install it or fix shim_path", ErrShimNotFound, err)
		}
		return shimPath, nil
	}
	name, err := BinaryName(runtimeType)
	if err != nil {
		return "", err
	}
	if self, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(self), name); executable(p) == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p)
	}
	if publishBinary != "" {
		if p := filepath.Join(filepath.Dir(publishBinary), name); executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: %s (runtime %s) is not next to containerd-shim-triage-v2, on $PATH or next to containerd: install it, or set shim_path for the tier", ErrShimNotFound, name, runtimeType)
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// Invocation is one run of a delegate shim's `start` or `delete` subcommand,
// with the flags containerd gave Triage.
type Invocation struct {
	Binary        string
	Namespace     string
	Address       string
	PublishBinary string
	ID            string
	Bundle        string
	Debug         bool
	// Env is the delegate's environment; it must carry TTRPC_ADDRESS so the
	// delegate publishes its events straight to containerd.
	Env []string
}

func (inv Invocation) command(ctx context.Context, action string) *exec.Cmd {
	args := []string{"-namespace", inv.Namespace, "-address", inv.Address, "-publish-binary", inv.PublishBinary, "-id", inv.ID}
	if action == "delete" {
		args = append(args, "-bundle", inv.Bundle)
	}
	if inv.Debug {
		args = append(args, "-debug")
	}
	cmd := exec.CommandContext(ctx, inv.Binary, append(args, action)...)
	cmd.Dir = inv.Bundle
	cmd.Env = inv.Env
	return cmd
}

// Start runs the delegate's `start` with stdin and parses its reply.
func (inv Invocation) Start(ctx context.Context, stdin []byte) (Reply, error) {
	out, err := inv.run(ctx, "start", stdin)
	if err != nil {
		return Reply{}, err
	}
	r, err := ParseReply(out)
	if err != nil {
		return Reply{}, fmt.Errorf("%s start: %w", filepath.Base(inv.Binary), err)
	}
	return r, nil
}

// Delete runs the delegate's `delete` and returns its stdout, a marshalled
// DeleteResponse that Triage relays to containerd unchanged.
func (inv Invocation) Delete(ctx context.Context) ([]byte, error) {
	return inv.run(ctx, "delete", nil)
}

func (inv Invocation) run(ctx context.Context, action string, stdin []byte) ([]byte, error) {
	cmd := inv.command(ctx, action)
	var stdout, stderr bytes.Buffer
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", filepath.Base(inv.Binary), action, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}
