package config

import (
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// This file parses the text form of values used by flags and environment
// variables: scalars as written, lists as comma-separated items, maps as
// comma-separated k=v items.

// expected returns the phrase naming what a value of type t must look like.
func expected(key string, t reflect.Type) string {
	if isDuration(t) {
		return "a duration such as 30s, 5m, 2ms or 1h30m"
	}
	unit := ""
	if u := unitOf(key); u != "" {
		unit = " (" + u + ")"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64:
		return "an integer" + unit
	case reflect.Float64:
		return "a number" + unit
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	case reflect.Pointer:
		return expected(key, t.Elem())
	}
	return t.String()
}

// badScalar returns the message for text s that is not a valid value of
// type t. A duration given to a numeric key is called out.
func badScalar(key string, t reflect.Type, s string) string {
	msg := "expected " + expected(key, t)
	if k := t.Kind(); k == reflect.Int || k == reflect.Int64 || k == reflect.Float64 {
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			if _, err := parseDuration(s); err == nil {
				msg += ", not a duration"
			}
		}
	}
	return invalid(s, msg)
}

// parseScalarText parses s as a value of scalar type t. On failure it
// returns the error message.
func parseScalarText(key string, t reflect.Type, s string) (reflect.Value, string) {
	v := reflect.New(t).Elem()
	if isDuration(t) {
		d, err := parseDuration(s)
		if err != nil {
			return v, badScalar(key, t, s)
		}
		v.SetInt(int64(d))
		return v, ""
	}
	switch t.Kind() {
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return v, badScalar(key, t, s)
		}
		v.SetBool(b)
	case reflect.String:
		v.SetString(s)
	case reflect.Int, reflect.Int64:
		i, err := strconv.ParseInt(s, 10, t.Bits())
		if errors.Is(err, strconv.ErrRange) {
			return v, invalid(s, "out of range")
		}
		if err != nil {
			return v, badScalar(key, t, s)
		}
		v.SetInt(i)
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if errors.Is(err, strconv.ErrRange) {
			return v, invalid(s, "out of range")
		}
		if err != nil {
			return v, badScalar(key, t, s)
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return v, invalid(s, "expected a finite number")
		}
		v.SetFloat(f)
	case reflect.Pointer:
		e, msg := parseScalarText(key, t.Elem(), s)
		if msg != "" {
			return v, msg
		}
		p := reflect.New(t.Elem())
		p.Elem().Set(e)
		v.Set(p)
	default:
		return v, "cannot be set from text"
	}
	return v, ""
}

// splitItems splits comma-separated text into trimmed, non-empty items.
func splitItems(s string) []string {
	var items []string
	for _, it := range strings.Split(s, ",") {
		if it = strings.TrimSpace(it); it != "" {
			items = append(items, it)
		}
	}
	return items
}

// parseText parses the values of one flag (every occurrence, in order) or one
// environment variable (a single element) into a value of type t. Scalars
// take the last occurrence; lists concatenate the items of all occurrences;
// maps merge them, a later item winning. An empty list or map is nil.
func parseText(key string, t reflect.Type, occurrences []string) (reflect.Value, string) {
	switch {
	case t.Kind() == reflect.Slice:
		v := reflect.New(t).Elem()
		for _, occ := range occurrences {
			for _, it := range splitItems(occ) {
				e, msg := parseScalarText(key, t.Elem(), it)
				if msg != "" {
					return v, msg
				}
				v = reflect.Append(v, e)
			}
		}
		return v, ""
	case t.Kind() == reflect.Map:
		v := reflect.New(t).Elem()
		for _, occ := range occurrences {
			for _, it := range splitItems(occ) {
				k, val, ok := strings.Cut(it, "=")
				k = strings.TrimSpace(k)
				if !ok || k == "" {
					return v, invalid(it, "expected key=value")
				}
				e, msg := parseScalarText(key+"."+k, t.Elem(), strings.TrimSpace(val))
				if msg != "" {
					return v, msg
				}
				if v.IsNil() {
					v.Set(reflect.MakeMap(t))
				}
				v.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), e)
			}
		}
		return v, ""
	default:
		if len(occurrences) == 0 {
			return reflect.New(t).Elem(), "no value"
		}
		return parseScalarText(key, t, occurrences[len(occurrences)-1])
	}
}
