package router

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	"google.golang.org/protobuf/proto"

	"github.com/triage-runtime/triage/shim/front"
)

// A container that joins its pod on containerd 2.4+ arrives without a
// `start`: start reported task API v3 for the pod, and containerd then only
// dials the pod's shim for the pod's later containers, as it does for runc.
// Create has such a container classified and its spec hardened first, by
// the very `start` containerd would have run, handed to triage-shimd (else
// run in a child). A container it refuses is not created.

// joiner runs `start` for containers that join the pod without one.
type joiner struct {
	// daemon is triage-shimd, installed next to the router.
	daemon string
	// flags are the shim flags containerd passes, but -id.
	flags []string
}

func newJoiner(flags []string) (joiner, error) {
	self, err := os.Executable()
	if err != nil {
		return joiner{}, err
	}
	return joiner{daemon: filepath.Join(filepath.Dir(self), front.DaemonBinary), flags: flags}, nil
}

// join runs `start` for the container r creates, with the runtime options
// containerd sent as its stdin.
func (j joiner) join(r *taskv2.CreateTaskRequest) error {
	var stdin []byte
	if r.Options != nil {
		b, err := proto.Marshal(r.Options)
		if err != nil {
			return err
		}
		stdin = b
	}
	args := append(slices.Clone(j.flags), "-id", r.ID, "start")
	var stdout, stderr bytes.Buffer
	if front.Run(j.daemon, args, r.Bundle, os.Environ(), stdin, &stdout, &stderr) != 0 {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = fmt.Sprintf("%s start failed without a message", front.DaemonBinary)
		}
		return errors.New(msg)
	}
	return nil
}
