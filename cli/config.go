package cli

import (
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/triage-runtime/triage/policy"
)

// The canonical containerd snippets. configs/containerd/ holds identical copies for readers
// (go:embed cannot reach a parent folder); TestSnippetCopies keeps them in sync.
//
//go:generate cp snippets/containerd-1.6.toml snippets/containerd-2.x.toml ../configs/containerd/
//go:embed snippets/containerd-1.6.toml snippets/containerd-2.x.toml
var snippets embed.FS

// handlerName is the CRI runtime handler, and so the RuntimeClass handler, Triage registers.
const handlerName = "triage"

// containerdVersion is a containerd release line; it decides the config layout.
type containerdVersion string

const (
	// containerd16 is containerd 1.6 and 1.7: config version 2, the CRI plugin
	// io.containerd.grpc.v1.cri.
	containerd16 containerdVersion = "1.6"
	// containerd2x is containerd 2.x: config version 3 or later, the CRI runtime plugin
	// io.containerd.cri.v1.runtime.
	containerd2x containerdVersion = "2.x"
)

// errUnknownContainerdVersion is returned for a --version that names no known release line.
var errUnknownContainerdVersion = errors.New("unknown containerd version")

func parseContainerdVersion(s string) (containerdVersion, error) {
	switch s {
	case "1.6", "1.7":
		return containerd16, nil
	case "2", "2.x":
		return containerd2x, nil
	}
	return "", fmt.Errorf("%w %q: use 1.6 (also for 1.7) or 2.x", errUnknownContainerdVersion, s)
}

// criPlugin is the key, under [plugins], of the plugin that holds the runtimes table.
func (v containerdVersion) criPlugin() string {
	if v == containerd16 {
		return "io.containerd.grpc.v1.cri"
	}
	return "io.containerd.cri.v1.runtime"
}

// configVersion is the config file version the snippet is written for (the least, for 2.x).
func (v containerdVersion) configVersion() int {
	if v == containerd16 {
		return 2
	}
	return 3
}

func (v containerdVersion) snippetFile() string { return "snippets/containerd-" + string(v) + ".toml" }

// containerdSnippet returns the TOML that registers the triage handler on containerd v, with
// the policy at configPath.
func containerdSnippet(v containerdVersion, configPath string) (string, error) {
	if err := checkConfigPath(configPath); err != nil {
		return "", err
	}
	b, err := snippets.ReadFile(v.snippetFile())
	if err != nil {
		return "", err
	}
	s := string(b)
	const def = `ConfigPath = "` + policy.DefaultPath + `"`
	if strings.Count(s, def) != 1 {
		return "", fmt.Errorf("%s: want exactly one %s line", v.snippetFile(), def)
	}
	return strings.Replace(s, def, `ConfigPath = "`+configPath+`"`, 1), nil
}

// errBadConfigPath is returned for a policy path the snippet cannot carry as it is.
var errBadConfigPath = errors.New("bad policy path")

// checkConfigPath accepts an absolute path that a TOML basic string holds without escapes.
func checkConfigPath(p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("%w %q: containerd needs an absolute path", errBadConfigPath, p)
	}
	if strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '"' || r == '\\' }) {
		return fmt.Errorf("%w %q: no quotes, backslashes or control characters", errBadConfigPath, p)
	}
	return nil
}

// configCmd runs `triage config WHAT`.
func configCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "containerd" {
		fmt.Fprint(stderr, "usage: triage config containerd [--version 1.6|2.x] [--config-path FILE]\n")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			return flag.ErrHelp
		}
		return errUsage
	}
	fset := flag.NewFlagSet("config containerd", flag.ContinueOnError)
	fset.SetOutput(stderr)
	version := fset.String("version", string(containerd2x), "containerd `release`: 1.6 (also 1.7, config version 2) or 2.x (config version 3)")
	configPath := fset.String("config-path", policy.DefaultPath, "policy `file` the shim reads (the runtime options' ConfigPath)")
	positional, err := parse(fset, args[1:])
	if err != nil {
		return err
	}
	if len(positional) > 0 {
		return usageError(fset, "unexpected argument %q", positional[0])
	}
	v, err := parseContainerdVersion(*version)
	if err != nil {
		return usageError(fset, "%v", err)
	}
	s, err := containerdSnippet(v, *configPath)
	if err != nil {
		return err
	}
	_, err = io.WriteString(stdout, s)
	return err
}
