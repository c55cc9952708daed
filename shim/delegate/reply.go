package delegate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	bootstrap "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"google.golang.org/protobuf/proto"
)

// Reply is what a delegate shim's `start` printed: where it serves the task API
// and in which version.
type Reply struct {
	Address string `json:"address"`
	// Version is the task API version: 2 (containerd.task.v2.Task) or 3
	// (containerd.task.v3.Task).
	Version  int    `json:"version"`
	Protocol string `json:"protocol"`
}

// ParseReply reads a `start` reply in any of the three formats shims print:
// a plain address (containerd 1.6 style, version 2), the JSON bootstrap
// {version,address,protocol} (1.7+ library) and the protobuf BootstrapResult
// (2.3+ library). Triage parses it itself so that containerd 1.6 never sees a
// format it cannot read.
func ParseReply(out []byte) (Reply, error) {
	out = bytes.TrimSpace(out)
	if len(out) == 0 {
		return Reply{}, fmt.Errorf("empty start reply")
	}
	var r Reply
	switch {
	case out[0] == '{':
		if err := json.Unmarshal(out, &r); err != nil {
			return Reply{}, fmt.Errorf("start reply %q: invalid JSON bootstrap: %w", out, err)
		}
	case bytes.HasPrefix(out, []byte("unix://")) || out[0] == '/':
		r = Reply{Address: string(out), Version: 2, Protocol: "ttrpc"}
	default:
		var res bootstrap.BootstrapResult
		if err := proto.Unmarshal(out, &res); err != nil || res.GetAddress() == "" {
			return Reply{}, fmt.Errorf("start reply %q is neither an address, JSON nor a BootstrapResult", out)
		}
		r = Reply{Address: res.GetAddress(), Version: int(res.GetVersion()), Protocol: res.GetProtocol()}
	}
	if r.Protocol == "" {
		r.Protocol = "ttrpc"
	}
	if r.Protocol != "ttrpc" {
		return Reply{}, fmt.Errorf("start reply %q: protocol %q is not supported, only ttrpc", out, r.Protocol)
	}
	if r.Version != 2 && r.Version != 3 {
		return Reply{}, fmt.Errorf("start reply %q: task API version %d is not supported (2 or 3)", out, r.Version)
	}
	if r.Address == "" || strings.ContainsAny(r.Address, "\n\r") {
		return Reply{}, fmt.Errorf("start reply %q: no usable address", out)
	}
	return r, nil
}
