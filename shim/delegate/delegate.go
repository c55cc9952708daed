// Package delegate starts, reaches and deletes the real runtime shims Triage
// hands workloads to (runc, gVisor's runsc, Kata), speaking each one's own
// start protocol and task API version.
package delegate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/triage-runtime/triage/shim/proc"
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
	// Procs starts the delegate's `start` (proc.Local when nil).
	Procs proc.Starter
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

// Pending is a delegate's `start` under way, or answered already. The
// process that spawned it stays its parent until it has finished: shims read
// their parent (containerd's child) at start, for one its OOM score.
type Pending struct {
	binary         string
	process        proc.Process
	stdout, stderr *os.File
	// answer is set when the reply is known without a start (Answered).
	answer *Reply
}

// maxStdin is what a pipe holds before a write would block: the delegate's
// stdin is written whole before it starts. Options and BootstrapParams are
// a few hundred bytes.
const maxStdin = 32 << 10

// Spawn starts the delegate's `start` with stdin and returns at once; Reply
// waits for it.
func (inv Invocation) Spawn(ctx context.Context, stdin []byte) (*Pending, error) {
	if len(stdin) > maxStdin {
		return nil, fmt.Errorf("%s start: input of %d bytes is over %d", filepath.Base(inv.Binary), len(stdin), maxStdin)
	}
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		files = append(files, r, w)
		return r, w, err
	}
	inR, inW, err := pipe()
	if err != nil {
		closeAll()
		return nil, err
	}
	outR, outW, err := pipe()
	if err != nil {
		closeAll()
		return nil, err
	}
	errR, errW, err := pipe()
	if err != nil {
		closeAll()
		return nil, err
	}
	if _, err := inW.Write(stdin); err != nil {
		closeAll()
		return nil, err
	}
	cmd := inv.command(ctx, "start")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	procs := inv.Procs
	if procs == nil {
		procs = proc.Local{}
	}
	process, err := procs.Start(cmd)
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("%s start: %w", filepath.Base(inv.Binary), err)
	}
	// The child holds its own copies now.
	inR.Close()
	inW.Close()
	outW.Close()
	errW.Close()
	return &Pending{binary: inv.Binary, process: process, stdout: outR, stderr: errR}, nil
}

// Answered is a start whose reply is already known: a shim that serves the
// container's group, which its start would only have named.
func Answered(binary string, r Reply) *Pending {
	return &Pending{binary: binary, answer: &r}
}

// Started tells whether Spawn started the delegate (not Answered).
func (p *Pending) Started() bool { return p.answer == nil }

// close releases this process's ends of the pipes.
func (p *Pending) close() {
	p.stdout.Close()
	p.stderr.Close()
}

// Reply waits for the start to finish and parses what it printed.
func (p *Pending) Reply() (Reply, error) {
	if p.answer != nil {
		return *p.answer, nil
	}
	defer p.close()
	errOut := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(p.stderr)
		errOut <- b
	}()
	out, rerr := io.ReadAll(p.stdout)
	stderr := bytes.TrimSpace(<-errOut)
	name := filepath.Base(p.binary)
	if err := p.process.Wait(); err != nil {
		return Reply{}, fmt.Errorf("%s start: %w: %s", name, err, stderr)
	}
	if rerr != nil {
		return Reply{}, fmt.Errorf("%s start: read its reply: %w", name, rerr)
	}
	r, err := ParseReply(out)
	if err != nil {
		if len(stderr) > 0 {
			return Reply{}, fmt.Errorf("%s start: %w: %s", name, err, stderr)
		}
		return Reply{}, fmt.Errorf("%s start: %w", name, err)
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
