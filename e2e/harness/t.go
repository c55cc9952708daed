package harness

import (
	"fmt"
	"os"
)

// T is the part of testing.TB the harness uses, so that programs (the demo,
// the benchmark) can start daemons too.
type T interface {
	Helper()
	Cleanup(func())
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Failed() bool
}

// Program is a T for a main package: Fatalf runs the cleanups and exits 1.
type Program struct {
	cleanups []func()
	failed   bool
}

var _ T = (*Program)(nil)

func (p *Program) Helper()                           {}
func (p *Program) Cleanup(f func())                  { p.cleanups = append(p.cleanups, f) }
func (p *Program) Logf(format string, args ...any)   { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (p *Program) Failed() bool                      { return p.failed }
func (p *Program) Errorf(format string, args ...any) { p.failed = true; p.Logf(format, args...) }

// Fatalf reports the failure, runs the cleanups and exits 1.
func (p *Program) Fatalf(format string, args ...any) {
	p.Errorf(format, args...)
	p.Close()
	os.Exit(1)
}

// Close runs the registered cleanups, last first.
func (p *Program) Close() {
	for i := len(p.cleanups) - 1; i >= 0; i-- {
		p.cleanups[i]()
	}
	p.cleanups = nil
}

// ProgramEnv is what a program run by `make target` (the demo, the benchmark, critest)
// needs: the environment e2e/setup.sh wrote, and the folder of the Triage binaries
// (TRIAGE_BIN). It fails p, naming the fix, when either is missing.
func ProgramEnv(p *Program, target string) (Env, string) {
	env, err := ReadEnv(EnvPath())
	if err != nil {
		p.Fatalf("e2e environment: %v: run `make e2e-setup` first", err)
	}
	bin := os.Getenv("TRIAGE_BIN")
	if bin == "" {
		p.Fatalf("TRIAGE_BIN is not set: run `make %s`", target)
	}
	return env, bin
}
