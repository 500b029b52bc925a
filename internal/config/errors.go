package config

import (
	"strconv"
	"strings"
)

// Error is a configuration error: an unknown key, a bad value, a value of the
// wrong YAML type or a failed validation. Load returns every error as an
// *Error (callers exit with status 2).
type Error struct {
	// Key is the key the error is about: a top-level key ("prometheus_port")
	// or the path of a nested one ("alert_rules[1].operator",
	// "prometheus_labels.env"). Empty for errors about the whole file.
	Key string
	// Source says where the offending value came from: the config file path,
	// "flag --x" or "env AGAOBS_X". Empty when unknown (Config.Validate).
	Source string
	// Line is the 1-based line in the config file, or 0.
	Line int
	// Msg describes the problem, e.g. `invalid value "abc": expected an integer`.
	Msg string
	// Err is the underlying error, if any (for example from reading the file).
	Err error
}

// Error renders e as
//
//	config file PATH line N: key "K": MSG
//	flag --x: key "K": MSG
//	env AGAOBS_X: key "K": MSG
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.Source == "":
	case strings.HasPrefix(e.Source, "flag --") || strings.HasPrefix(e.Source, "env "):
		b.WriteString(e.Source)
	default:
		b.WriteString("config file ")
		b.WriteString(e.Source)
		if e.Line > 0 {
			b.WriteString(" line ")
			b.WriteString(strconv.Itoa(e.Line))
		}
	}
	if e.Key != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString("key ")
		b.WriteString(strconv.Quote(e.Key))
	}
	if e.Msg != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(e.Msg)
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// invalid returns the message for a value that does not parse or validate.
func invalid(value, why string) string {
	return "invalid value " + strconv.Quote(value) + ": " + why
}
