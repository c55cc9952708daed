//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/triage-runtime/triage/e2e/harness"
)

// nodeExporter runs Debian's prometheus-node-exporter with only its textfile collector,
// reading dir, on a free loopback port, and returns a scrape function. It is stopped by
// pid when the test ends.
func nodeExporter(t *testing.T, dir string) func() string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command("prometheus-node-exporter", "--collector.disable-defaults", "--collector.textfile",
		"--collector.textfile.directory="+dir, "--web.listen-address="+addr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("prometheus-node-exporter (apt-get install prometheus-node-exporter; e2e/setup.sh does): %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	scrape := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	waitFor(t, "node_exporter to serve", 10*time.Second, func() bool { return scrape() != "" })
	return scrape
}

// metricValue reads one sample (NAME{LABELS} VALUE) from a scrape; -1 when absent.
func metricValue(scrape, series string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(scrape)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestMetricsThroughNodeExporter: Triage's decisions, refusals, start times, policy loads
// and pods per tier reach Prometheus through node_exporter's textfile collector, scraped
// over loopback; the counts survive triage-shimd's exit.
func TestMetricsThroughNodeExporter(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v harness.Version) {
		textfiles := t.TempDir()
		n := startNode(t, v, strings.Replace(tieredPolicy, `audit_log = "@AUDIT@"`,
			`audit_log = "@AUDIT@"`+"\nmetrics_textfile = \""+filepath.Join(textfiles, "triage.prom")+"\"", 1))
		scrape := nodeExporter(t, textfiles)
		for i := range 3 {
			n.mustCtr(n.runArgs("--rm", image, n.ID(fmt.Sprintf("ok%d", i)), "true")...)
		}
		c := n.ID("long")
		n.mustCtr(append(n.runArgs("-d", "--annotation", "triage.io/tier=sandboxed"), image, c, "sleep", "300")...)
		n.runRefused("a privileged container", []string{"deny-privileged"}, image, n.ID("priv"), "--privileged")
		// triage-shimd exits (here: is killed); the counts go on.
		for _, pid := range n.snapshot().ShimDaemons {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		n.runRefused("a privileged container", []string{"deny-privileged"}, image, n.ID("priv2"), "--privileged")

		got := scrape()
		want := map[string]float64{
			`triage_decisions_total{action="run",rule="default",tier="trusted"}`:                  3,
			`triage_decisions_total{action="run",rule="request:triage.io/tier",tier="sandboxed"}`: 1,
			`triage_decisions_total{action="deny",rule="deny-privileged",tier=""}`:                2,
			`triage_refusals_total{cause="rule:deny-privileged"}`:                                 2,
			`triage_start_seconds_count`:                                                          4,
			`triage_pods{tier="sandboxed"}`:                                                       1,
		}
		for series, w := range want {
			if v := metricValue(got, series); v != w {
				t.Errorf("%s = %v, want %v", series, v, w)
			}
		}
		// Each new triage-shimd compiles the policy once.
		if v := metricValue(got, `triage_policy_loads_total{result="ok"}`); v < 1 {
			t.Errorf("policy loads: %v, want at least 1", v)
		}
		if !strings.Contains(got, `node_textfile_scrape_error 0`) {
			t.Errorf("node_exporter could not read the textfile:\n%s", got)
		}
		n.removeTasks(c)
		if v := metricValue(scrape(), `triage_pods{tier="sandboxed"}`); v > 0 {
			t.Errorf("pods in tier sandboxed after the last one's delete: %v", v)
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(textfiles, "triage.prom"))
			t.Logf("triage.prom:\n%s", b)
		}
	})
}
