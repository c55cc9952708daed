package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/triage-runtime/triage/policy"
)

// Errors of `triage install`; each leaves the node untouched.
var (
	// errRuntimeDiffers: the containerd config already registers a runtime named triage,
	// with other settings.
	errRuntimeDiffers = errors.New("containerd config already registers a different runtime named " + handlerName)
	// errConfigVersion: the containerd config's version does not match a supported layout.
	errConfigVersion = errors.New("unsupported containerd config version")
	// errPolicyDiffers: an installed policy differs from --policy and --replace-policy is not set.
	errPolicyDiffers = errors.New("installed policy differs")
	// errNoPolicy: no policy is installed and none is given.
	errNoPolicy = errors.New("no policy")
)

// binaries are installed from the folder of the running triage binary (or --from).
var binaries = []string{"containerd-shim-triage-v2", "triage-shimd", "triage-router", "triage"}

// fileWrite is one file install will write: all are computed, and every check has passed,
// before the first is written, so a refusal leaves the node as it was.
type fileWrite struct {
	path string
	data []byte
	mode fs.FileMode
	what string // shown to the operator
	// restart: containerd reads the file only when it starts.
	restart bool
}

type installer struct {
	root             string
	from             string
	binDir           string
	policySrc        string
	replacePolicy    bool
	containerdConfig string
	version          containerdVersion // empty: from the config file's version
	out              io.Writer
}

func install(args []string, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("install", flag.ContinueOnError)
	fset.SetOutput(stderr)
	in := installer{out: stdout}
	fset.StringVar(&in.root, "root", "/", "`folder` every installed path is under (for images and tests)")
	fset.StringVar(&in.from, "from", "", "`folder` holding containerd-shim-triage-v2, triage-shimd, triage-router and triage (default: this binary's folder)")
	fset.StringVar(&in.binDir, "bin-dir", "/usr/local/bin", "`folder` for the binaries; it must be on containerd's PATH")
	fset.StringVar(&in.policySrc, "policy", "", "policy `file` to install as "+policy.DefaultPath+" (default: keep the installed one)")
	fset.BoolVar(&in.replacePolicy, "replace-policy", false, "replace an installed policy that differs from --policy")
	fset.StringVar(&in.containerdConfig, "containerd-config", "/etc/containerd/config.toml", "containerd config `file` to register the triage runtime in")
	version := fset.String("version", "", "containerd `release` (1.6, 1.7 or 2.x); needed only when the config file does not exist yet")
	positional, err := parse(fset, args)
	if err != nil {
		return err
	}
	if len(positional) > 0 {
		return usageError(fset, "unexpected argument %q", positional[0])
	}
	if *version != "" {
		if in.version, err = parseContainerdVersion(*version); err != nil {
			return usageError(fset, "%v", err)
		}
	}
	if in.from == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the binaries: %w; pass --from FOLDER", err)
		}
		in.from = filepath.Dir(exe)
	}
	return in.run()
}

// run checks everything, then writes what differs.
func (in *installer) run() error {
	var writes []fileWrite
	for _, prepare := range []func() ([]fileWrite, error){in.binaries, in.policy, in.containerd} {
		w, err := prepare()
		if err != nil {
			return err
		}
		writes = append(writes, w...)
	}
	for _, w := range writes {
		if err := writeFileAtomic(w.path, w.data, w.mode); err != nil {
			return err
		}
		fmt.Fprintf(in.out, "%s: %s\n", w.path, w.what)
	}
	switch {
	case len(writes) == 0:
		fmt.Fprintln(in.out, "nothing to do: already installed")
	case !slices.ContainsFunc(writes, func(w fileWrite) bool { return w.restart }):
		fmt.Fprintln(in.out, "containerd needs no restart: the next start runs the new files; running pods keep theirs")
	}
	return nil
}

// under places an absolute node path under --root.
func (in *installer) under(p string) string { return filepath.Join(in.root, p) }

func (in *installer) binaries() ([]fileWrite, error) {
	var writes []fileWrite
	for _, name := range binaries {
		data, err := os.ReadFile(filepath.Join(in.from, name))
		if err != nil {
			return nil, fmt.Errorf("%w: build it with `make build` or pass --from FOLDER", err)
		}
		dst := in.under(filepath.Join(in.binDir, name))
		if st, err := compareFile(dst, data); err != nil || st == fileSame {
			if err != nil {
				return nil, err
			}
			continue
		}
		writes = append(writes, fileWrite{path: dst, data: data, mode: 0o755, what: "installed " + name})
	}
	return writes, nil
}

func (in *installer) policy() ([]fileWrite, error) {
	dst := in.under(policy.DefaultPath)
	if in.policySrc == "" {
		if _, err := loadPolicy(dst); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("%w at %s: pass --policy FILE (e.g. configs/triage.toml)", errNoPolicy, dst)
			}
			return nil, fmt.Errorf("installed policy: %w", err)
		}
		return nil, nil
	}
	if _, err := loadPolicy(in.policySrc); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(in.policySrc)
	if err != nil {
		return nil, err
	}
	st, err := compareFile(dst, data)
	switch {
	case err != nil:
		return nil, err
	case st == fileSame:
		return nil, nil
	case st == fileDiffers && !in.replacePolicy:
		return nil, fmt.Errorf("%w: %s is not %s; compare them, then pass --replace-policy", errPolicyDiffers, dst, in.policySrc)
	}
	return []fileWrite{{path: dst, data: data, mode: 0o644, what: "installed policy from " + in.policySrc}}, nil
}

// fileState is how an installed file compares with what install would write.
type fileState int

const (
	fileMissing fileState = iota
	fileSame
	fileDiffers
)

func compareFile(path string, data []byte) (fileState, error) {
	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fileMissing, nil
	case err != nil:
		return fileMissing, err
	case bytes.Equal(old, data):
		return fileSame, nil
	}
	return fileDiffers, nil
}

// containerd registers the triage runtime in the containerd config: appended as text, so
// the operator's comments and layout stay, then parsed again to prove the result.
func (in *installer) containerd() ([]fileWrite, error) {
	path := in.under(in.containerdConfig)
	old, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if in.version == "" {
			return nil, fmt.Errorf("%s does not exist: pass --version 1.6|2.x to create it", path)
		}
		snippet, err := containerdSnippet(in.version, policy.DefaultPath)
		if err != nil {
			return nil, err
		}
		data := fmt.Appendf(nil, "version = %d\n\n%s", in.version.configVersion(), snippet)
		return []fileWrite{{path: path, data: data, mode: 0o644, what: "created with runtime " + handlerName + "; restart containerd", restart: true}}, nil
	}
	if err != nil {
		return nil, err
	}
	cfg, err := parseTOML(path, old)
	if err != nil {
		return nil, err
	}
	v, err := layoutOf(path, cfg, in.version)
	if err != nil {
		return nil, err
	}
	snippet, err := containerdSnippet(v, policy.DefaultPath)
	if err != nil {
		return nil, err
	}
	want, err := triageRuntime(v, []byte(snippet))
	if err != nil || want == nil {
		return nil, fmt.Errorf("snippet for containerd %s: no runtime %s (%v)", v, handlerName, err)
	}
	if have := runtimeTable(v, cfg); have != nil {
		if diff := tableDiff(have, want); len(diff) > 0 {
			return nil, fmt.Errorf("%w in %s (%s): %s; remove or rename it, or fix it to match `triage config containerd --version %s`",
				errRuntimeDiffers, path, strings.Join(diff, ", "), v, v)
		}
		return nil, nil
	}
	data := append(bytes.TrimRight(old, "\n"), '\n', '\n')
	data = append(data, snippet...)
	got, err := triageRuntime(v, data)
	if err != nil {
		return nil, fmt.Errorf("appending the triage runtime to %s makes it invalid (%w); add the output of `triage config containerd --version %s` by hand", path, err, v)
	}
	if diff := tableDiff(got, want); got == nil || len(diff) > 0 {
		return nil, fmt.Errorf("appending the triage runtime to %s does not register it as written (%s); add it by hand", path, strings.Join(diff, ", "))
	}
	mode := fs.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	return []fileWrite{{path: path, data: data, mode: mode, what: fmt.Sprintf("registered runtime %s (containerd %s layout); restart containerd", handlerName, v), restart: true}}, nil
}

func parseTOML(path string, data []byte) (map[string]any, error) {
	var cfg map[string]any
	if err := toml.Unmarshal(data, &cfg); err != nil {
		if de := (*toml.DecodeError)(nil); errors.As(err, &de) {
			row, col := de.Position()
			return nil, fmt.Errorf("%s:%d:%d: %v", path, row, col, err)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// layoutOf picks the layout from the config's version; a --version must agree with it.
func layoutOf(path string, cfg map[string]any, flagged containerdVersion) (containerdVersion, error) {
	n, _ := cfg["version"].(int64)
	var v containerdVersion
	switch {
	case n == 2:
		v = containerd16
	case n >= 3:
		v = containerd2x
	default:
		return "", fmt.Errorf("%w in %s: %v (want version = 2 for containerd 1.6/1.7, 3 or later for 2.x); migrate it with `containerd config migrate`",
			errConfigVersion, path, cfg["version"])
	}
	if flagged != "" && flagged != v {
		return "", fmt.Errorf("%w: %s has version = %d, which is not containerd %s's layout", errConfigVersion, path, n, flagged)
	}
	return v, nil
}

// triageRuntime parses data and returns its triage runtime table, nil if there is none.
func triageRuntime(v containerdVersion, data []byte) (map[string]any, error) {
	cfg, err := parseTOML("config", data)
	if err != nil {
		return nil, err
	}
	return runtimeTable(v, cfg), nil
}

// runtimeTable is plugins.<cri>.containerd.runtimes.triage, or nil.
func runtimeTable(v containerdVersion, cfg map[string]any) map[string]any {
	t := cfg
	for _, k := range []string{"plugins", v.criPlugin(), "containerd", "runtimes", handlerName} {
		next, ok := t[k].(map[string]any)
		if !ok {
			return nil
		}
		t = next
	}
	return t
}

// tableDiff lists the keys whose values differ between have and want, nested keys dotted.
func tableDiff(have, want map[string]any) []string {
	var diff []string
	keys := map[string]bool{}
	for k := range have {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		h, w := have[k], want[k]
		hm, hok := h.(map[string]any)
		wm, wok := w.(map[string]any)
		switch {
		case hok && wok:
			for _, d := range tableDiff(hm, wm) {
				diff = append(diff, k+"."+d)
			}
		case w == nil:
			diff = append(diff, fmt.Sprintf("%s = %v is not Triage's", k, h))
		case h == nil:
			diff = append(diff, fmt.Sprintf("%s is missing (want %v)", k, w))
		case !reflect.DeepEqual(h, w):
			diff = append(diff, fmt.Sprintf("%s = %v, want %v", k, h, w))
		}
	}
	return diff
}

// writeFileAtomic writes data to path through a temporary file in its folder, so a reader
// (containerd starting) never sees half a file.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) (retErr error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
