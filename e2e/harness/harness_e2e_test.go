//go:build e2e

package harness_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/triage-runtime/triage/e2e/harness"
)

// TestSmoke runs a container through ctr and a pod through CRI on each containerd version with
// plain runc, and checks that nothing is left behind.
func TestSmoke(t *testing.T) {
	env := harness.LoadEnv(t)
	for _, v := range []harness.Version{harness.V16, harness.V2} {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			d := harness.StartContainerd(t, env, v, harness.Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			run := func(round string) {
				stdout, stderr, code, err := d.Ctr(ctx, "run", "--rm", harness.BusyboxImage, d.ID("t"+round), "sh", "-c", "echo hi; exit 3")
				if err != nil || code != 3 || strings.TrimSpace(stdout) != "hi" {
					t.Fatalf("ctr run: exit %d (want 3), err %v, stdout %q (want \"hi\"), stderr %q", code, err, stdout, stderr)
				}
				runPod(ctx, t, d, round)
			}
			// The first round opens what CRI keeps open for good (containerd
			// 1.6 keeps a few more fds after its first pod); the second must
			// leave nothing.
			run("1")
			before := snapshot(t, d.Dir())
			run("2")
			// containerd closes some fds a moment after the calls return: Leaks waits, as
			// for the Triage e2e tests, before calling what is left a leak.
			leaks, err := harness.Leaks(d.Dir(), before, nil)
			if err != nil {
				t.Fatalf("snapshot: %v", err)
			}
			if len(leaks) > 0 {
				t.Errorf("leaked after ctr run and a CRI pod:\n%s", strings.Join(leaks, "\n"))
			}
		})
	}
}

// runPod starts a pod and a container with the runc handler, checks the container's output,
// then stops and removes both.
func runPod(ctx context.Context, t *testing.T, d *harness.Daemon, round string) {
	t.Helper()
	crictl := func(args ...string) string {
		t.Helper()
		stdout, stderr, code, err := d.Crictl(ctx, args...)
		if err != nil || code != 0 {
			t.Fatalf("crictl %s: exit %d, %v: %s", strings.Join(args, " "), code, err, stderr)
		}
		return strings.TrimSpace(stdout)
	}
	tmp := t.TempDir()
	podFile := writeJSON(t, tmp, "pod.json", map[string]any{
		"metadata":      map[string]any{"name": "smoke", "namespace": "default", "uid": "smoke-" + round + "-" + d.Version().String()},
		"log_directory": filepath.Join(tmp, "logs"),
	})
	ctrFile := writeJSON(t, tmp, "container.json", map[string]any{
		"metadata": map[string]any{"name": "c"},
		"image":    map[string]any{"image": harness.BusyboxImage},
		"command":  []string{"sh", "-c", "echo cri-ok; sleep 60"},
		"log_path": "c.log",
	})

	pod := crictl("runp", "--runtime", "runc", podFile)
	ctr := crictl("create", pod, ctrFile, podFile)
	crictl("start", ctr)
	for logs := ""; !strings.Contains(logs, "cri-ok"); logs = crictl("logs", ctr) {
		if ctx.Err() != nil {
			t.Fatalf("container %s never printed cri-ok; logs: %q", ctr, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	crictl("stop", "--timeout", "1", ctr)
	crictl("rm", ctr)
	crictl("stopp", pod)
	crictl("rmp", pod)
}

func snapshot(t *testing.T, dir string) harness.Resources {
	t.Helper()
	r, err := harness.Snapshot(dir)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return r
}

func writeJSON(t *testing.T, dir, name string, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
