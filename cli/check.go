package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"

	"github.com/triage-runtime/triage/policy"
)

func check(args []string, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("check", flag.ContinueOnError)
	fset.SetOutput(stderr)
	config := fset.String("config", defaultPolicy(), "policy `file` to check ($TRIAGE_POLICY, else "+policy.DefaultPath+")")
	positional, err := parse(fset, args)
	if err != nil {
		return err
	}
	if len(positional) > 0 {
		return usageError(fset, "unexpected argument %q: give the policy file with --config", positional[0])
	}
	p, err := loadPolicy(*config)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ok: %s: %d tiers, %d rules, default tier %s\n", p.Source, len(p.Tiers), len(p.Rules), p.DefaultTier)
	return nil
}

// loadPolicy loads a policy file; an invalid one is reported one problem per line, each
// starting with file:line:column.
func loadPolicy(path string) (*policy.Policy, error) {
	p, err := policy.Load(path)
	switch {
	case err == nil:
		return p, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%w: install a policy there (see configs/triage.toml) or pass --config FILE", err)
	}
	if problems := policy.Errors(err); len(problems) > 0 {
		msg := fmt.Sprintf("%d problem(s) in %s:", len(problems), path)
		for _, e := range problems {
			msg += "\n  " + e.Error()
		}
		return nil, errors.New(msg)
	}
	return nil, err
}
