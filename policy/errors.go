package policy

import (
	"errors"
	"fmt"
)

// Error classes. Every *Error wraps exactly one of them; compare with errors.Is.
var (
	// ErrSyntax: the file is not valid TOML, or a value has the wrong type.
	ErrSyntax = errors.New("invalid TOML")
	// ErrUnknownKey: a key the schema does not define.
	ErrUnknownKey = errors.New("unknown key")
	// ErrMissingKey: a required key is absent or empty.
	ErrMissingKey = errors.New("missing required key")
	// ErrInvalidValue: a value outside its allowed set or form.
	ErrInvalidValue = errors.New("invalid value")
	// ErrUnknownTier: a reference to a tier that is not defined.
	ErrUnknownTier = errors.New("unknown tier")
	// ErrDuplicate: a value that must be unique is not (tier strength, rule name).
	ErrDuplicate = errors.New("duplicate value")
	// ErrBadGlob: a malformed glob pattern.
	ErrBadGlob = errors.New("bad glob pattern")
	// ErrBadExpression: a CEL expression that does not compile or is not of type bool.
	ErrBadExpression = errors.New("bad expression")
	// ErrWeakFallback: a tier's fallback is not stronger than the tier.
	ErrWeakFallback = errors.New("fallback weaker than its tier")
	// ErrNotForRuntime: a setting the tier's runtime does not take.
	ErrNotForRuntime = errors.New("setting not supported by the runtime")
	// ErrUnknownFinding: a rule names a finding id that does not exist.
	ErrUnknownFinding = errors.New("unknown finding")
)

// Error is one problem in a policy file, located at File:Line:Column.
// Line and Column are 1-based; they are 0 when the position is not known (a Policy built
// in code rather than parsed).
type Error struct {
	File   string
	Line   int
	Column int
	// Key is the dotted key the problem is about ("rule[2].tier"); may be empty.
	Key string
	// Msg says what is wrong and how to fix it.
	Msg string
	// Err is the error class, one of the Err* variables.
	Err error
}

func (e *Error) Error() string {
	where := e.File
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d:%d", e.File, e.Line, e.Column)
	}
	if e.Key != "" {
		return fmt.Sprintf("%s: %s: %s", where, e.Key, e.Msg)
	}
	return fmt.Sprintf("%s: %s", where, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }

// Errors returns the *Error values in err, which Load, Parse and Validate return as one
// error joining all the problems found.
func Errors(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		if pe, ok := err.(*Error); ok {
			out = append(out, pe)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}
