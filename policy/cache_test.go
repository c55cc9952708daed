package policy_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/triage-runtime/triage/policy"
)

func TestCacheCompilesEachVersionOnce(t *testing.T) {
	dir := t.TempDir()
	prof := filepath.Join(dir, "profile.json")
	writeProfile := func(action string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(prof, []byte(`{"defaultAction": "`+action+`"}`), 0o644); err != nil {
			t.Fatal(err)
		}
		// Out of the racy window: a file written this second is never trusted by its stamp.
		if err := os.Chtimes(prof, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "triage.toml")
	writePolicy := func(doc string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	withProfile := valid + "[tier.trusted.hardening]\nseccomp = \"" + prof + "\"\n"
	writeProfile("SCMP_ACT_ERRNO", time.Now().Add(-time.Hour))
	writePolicy(withProfile)

	var c policy.Cache
	load := func() *policy.Policy {
		t.Helper()
		p, err := c.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	first := load()
	if again := load(); again != first {
		t.Fatal("the same policy was compiled again")
	}

	writeProfile("SCMP_ACT_KILL", time.Now().Add(-time.Minute))
	changed := load()
	if changed == first {
		t.Fatal("a changed seccomp profile did not compile the policy again")
	}
	if got := changed.Tiers["trusted"].Hardening.SeccompProfile.DefaultAction; got != "SCMP_ACT_KILL" {
		t.Fatalf("profile default action %q, want the new SCMP_ACT_KILL", got)
	}

	writePolicy(withProfile + "\n# edited\n")
	if edited := load(); edited == changed {
		t.Fatal("an edited policy was not compiled again")
	}

	// A profile written just now may still change with the same stamp: not cached.
	writeProfile("SCMP_ACT_KILL_PROCESS", time.Now())
	if fresh := load(); fresh == load() {
		t.Fatal("a policy whose profile was written within the last second was cached")
	}

	writePolicy("default_tier = \"nosuch\"\n")
	if _, err := c.Load(path); err == nil {
		t.Fatal("a broken policy loaded from the cache")
	}
}
