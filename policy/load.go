package policy

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/pelletier/go-toml/v2"
)

// InlineSource is the name Parse uses in messages for a policy given inline in the
// runtime options' ConfigBody.
const InlineSource = "<config_body>"

// Load reads and parses the policy file at path.
func Load(path string) (*Policy, error) {
	data, err := read(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// read reads a policy file.
func read(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	return data, nil
}

// Parse parses, compiles and validates a policy document. name is used in messages. The
// error joins every problem found, each an *Error naming name:line:column.
func Parse(name string, data []byte) (*Policy, error) {
	p := &Policy{}
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(p); err != nil {
		return nil, decodeError(name, data, err)
	}
	p.Source = name
	p.positions = indexPositions(data)
	p.setDefaults()
	err := errors.Join(p.compile(), p.Validate())
	if err == nil {
		err = p.loadProfiles()
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// decodeError converts go-toml's errors, which know line and column, into *Error values.
func decodeError(name string, data []byte, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		ps := indexPositions(data)
		var errs []error
		for i := range strict.Errors {
			de := &strict.Errors[i]
			line, col := de.Position()
			errs = append(errs, &Error{
				File: name, Line: line, Column: col, Key: ps.keyAt(line, col, joinKey(de.Key())), Err: ErrUnknownKey,
				Msg: "unknown key; check its spelling and the table it is in (see configs/triage.toml)",
			})
		}
		return errors.Join(errs...)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, col := de.Position()
		return &Error{File: name, Line: line, Column: col, Key: joinKey(de.Key()), Err: ErrSyntax, Msg: de.Error()}
	}
	return &Error{File: name, Err: ErrSyntax, Msg: err.Error()}
}

func joinKey(k toml.Key) string {
	key := ""
	for _, part := range k {
		key = join(key, part)
	}
	return key
}
