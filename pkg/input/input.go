// Package input lets a workflow's errors say which of its inputs fixes
// them, without knowing how a user gives that input. The domain packages
// (pkg/enroll, pkg/rollout, ...) are used by the CLI, by tests and could be
// used by a controller: their messages name the fix in words ("choose an
// overlay CIDR outside it"), and the command layer, which knows its flags,
// adds them ("(--overlay-cidr)").
package input

import "errors"

// Name is an input of a workflow in the domain's words, such as
// "overlay CIDR"; each domain package declares its own.
type Name string

// Suggestion is one input whose change fixes an error, with the value to
// give it when there is one.
type Suggestion struct {
	Name  Name
	Value string
}

// Use suggests changing (or giving) an input.
func Use(name Name) Suggestion { return Suggestion{Name: name} }

// Set suggests giving an input a value.
func Set(name Name, value string) Suggestion { return Suggestion{Name: name, Value: value} }

// FixError is an error whose fix is to change one of Fix's inputs; its
// message is Err's, which already says so in words.
type FixError struct {
	Err error
	Fix []Suggestion
}

func (e *FixError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error, so errors.Is and errors.As see
// through the suggestion.
func (e *FixError) Unwrap() error { return e.Err }

// Fix attaches suggestions to err (nil stays nil).
func Fix(err error, fix ...Suggestion) error {
	if err == nil {
		return nil
	}
	return &FixError{Err: err, Fix: fix}
}

// Suggestions returns the suggestions attached anywhere in err's chain,
// outermost first.
func Suggestions(err error) []Suggestion {
	var out []Suggestion
	for err != nil {
		var fe *FixError
		if !errors.As(err, &fe) {
			break
		}
		out = append(out, fe.Fix...)
		err = fe.Err
	}
	return out
}
