package pyfmt

import (
	"encoding/json"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Repr renders a JSON value the way Python's repr() shows the decoded
// value (dict key order kept): the seed logged audit details and other
// events' data with str(dict).
func Repr(raw json.RawMessage) string { return string(AppendRepr(nil, raw)) }

// AppendRepr appends Repr(raw). One valid JSON value (the producers'
// case) is rendered in one pass over its bytes with no allocation; any
// other text goes through encoding/json's token stream (reprDecoder),
// whose output for broken text the fast path does not try to copy.
func AppendRepr(b []byte, raw []byte) []byte {
	if out, ok := appendReprFast(b, raw); ok {
		return out
	}
	return append(b, reprDecoder(raw)...)
}

// maxReprDepth bounds the fast path's recursion; deeper values go through
// the decoder, as before.
const maxReprDepth = 1000

// appendReprFast appends the repr of raw when raw is exactly one valid
// JSON value with only whitespace around it; ok is false (and b may hold
// a partial rendering past its length) otherwise.
func appendReprFast(b []byte, raw []byte) (out []byte, ok bool) {
	start := len(b)
	b, i, ok := appendReprValue(b, raw, skipSpace(raw, 0), 0)
	if !ok || skipSpace(raw, i) != len(raw) {
		return b[:start], false
	}
	return b, true
}

// skipSpace skips JSON whitespace from raw[i].
func skipSpace(raw []byte, i int) int {
	for i < len(raw) && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r') {
		i++
	}
	return i
}

// appendReprValue renders the value at raw[i] and returns the index after it.
func appendReprValue(b, raw []byte, i, depth int) ([]byte, int, bool) {
	if i >= len(raw) {
		return b, i, false
	}
	switch c := raw[i]; {
	case c == '{' || c == '[':
		if depth >= maxReprDepth {
			return b, i, false
		}
		return appendReprContainer(b, raw, i, depth+1)
	case c == '"':
		return appendReprString(b, raw, i)
	case c == '-' || c >= '0' && c <= '9':
		return appendReprNumber(b, raw, i)
	}
	for _, l := range [...]struct{ json, py string }{{"true", "True"}, {"false", "False"}, {"null", "None"}} {
		if len(raw)-i >= len(l.json) && string(raw[i:i+len(l.json)]) == l.json {
			return append(b, l.py...), i + len(l.json), true
		}
	}
	return b, i, false
}

// appendReprContainer renders the object or array at raw[i] ('{' or '['):
// items separated by ", ", keys by ": ".
func appendReprContainer(b, raw []byte, i, depth int) ([]byte, int, bool) {
	obj := raw[i] == '{'
	end := byte(']')
	if obj {
		end = '}'
	}
	b = append(b, raw[i])
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == end {
		return append(b, end), i + 1, true
	}
	for ok := true; ; {
		if obj {
			if i >= len(raw) || raw[i] != '"' {
				return b, i, false
			}
			if b, i, ok = appendReprString(b, raw, i); !ok {
				return b, i, false
			}
			if i = skipSpace(raw, i); i >= len(raw) || raw[i] != ':' {
				return b, i, false
			}
			b = append(b, ": "...)
			i = skipSpace(raw, i+1)
		}
		if b, i, ok = appendReprValue(b, raw, i, depth); !ok {
			return b, i, false
		}
		if i = skipSpace(raw, i); i >= len(raw) {
			return b, i, false
		}
		switch raw[i] {
		case end:
			return append(b, end), i + 1, true
		case ',':
			b = append(b, ", "...)
			i = skipSpace(raw, i+1)
		default:
			return b, i, false
		}
	}
}

// appendReprNumber renders the JSON number at raw[i] as the decoder's
// json.Number went through Repr: an int64 as an integer, anything else as
// a float, and the text itself where the float is out of range.
func appendReprNumber(b, raw []byte, i int) ([]byte, int, bool) {
	end, isInt := scanNumber(raw, i)
	if end < 0 {
		return b, i, false
	}
	num := raw[i:end]
	if isInt {
		if n, err := strconv.ParseInt(string(num), 10, 64); err == nil {
			return strconv.AppendInt(b, n, 10), end, true // "-0" is 0
		}
	}
	if f, err := strconv.ParseFloat(string(num), 64); err == nil {
		return AppendFloat(b, f), end, true
	}
	return append(b, num...), end, true
}

// scanNumber scans a number of JSON's grammar at raw[i]; end is -1 if there
// is none. isInt is false when it has a fraction or an exponent.
func scanNumber(raw []byte, i int) (end int, isInt bool) {
	if i < len(raw) && raw[i] == '-' {
		i++
	}
	switch {
	case i < len(raw) && raw[i] == '0':
		i++
	case i < len(raw) && raw[i] >= '1' && raw[i] <= '9':
		i = skipDigits(raw, i)
	default:
		return -1, false
	}
	isInt = true
	if i < len(raw) && raw[i] == '.' {
		if j := skipDigits(raw, i+1); j > i+1 {
			i, isInt = j, false
		} else {
			return -1, false
		}
	}
	if i < len(raw) && (raw[i] == 'e' || raw[i] == 'E') {
		i++
		if i < len(raw) && (raw[i] == '+' || raw[i] == '-') {
			i++
		}
		j := skipDigits(raw, i)
		if j == i {
			return -1, false
		}
		i, isInt = j, false
	}
	return i, isInt
}

func skipDigits(raw []byte, i int) int {
	for i < len(raw) && raw[i] >= '0' && raw[i] <= '9' {
		i++
	}
	return i
}

// appendReprString renders the JSON string at raw[i] (its opening quote)
// as Python's repr of the decoded str: single quotes unless it holds a
// single quote and no double quote.
func appendReprString(b, raw []byte, i int) ([]byte, int, bool) {
	end, single, double, ok := scanString(raw, i)
	if !ok {
		return b, i, false
	}
	q := byte('\'')
	if single && !double {
		q = '"'
	}
	b = append(b, q)
	s := raw[i+1 : end-1]
	for j := 0; j < len(s); {
		// Copy the run that needs no escaping at once.
		k := j
		for k < len(s) && s[k] >= 0x20 && s[k] < 0x7f && s[k] != '\\' && s[k] != q {
			k++
		}
		b = append(b, s[j:k]...)
		if j = k; j == len(s) {
			break
		}
		var r rune
		r, j = decodeStringRune(s, j)
		b = appendReprRune(b, r, q)
	}
	return append(b, q), end, true
}

// decodeStringRune decodes the rune at s[j] of a string's contents as
// encoding/json does: escapes, surrogate pairs, and U+FFFD for an invalid
// byte or a lone surrogate. s was checked by scanString.
func decodeStringRune(s []byte, j int) (rune, int) {
	if s[j] != '\\' {
		if s[j] < utf8.RuneSelf {
			return rune(s[j]), j + 1
		}
		r, n := utf8.DecodeRune(s[j:])
		return r, j + n
	}
	switch c := s[j+1]; c {
	case 'b':
		return '\b', j + 2
	case 'f':
		return '\f', j + 2
	case 'n':
		return '\n', j + 2
	case 'r':
		return '\r', j + 2
	case 't':
		return '\t', j + 2
	case 'u':
		r := getu4(s[j:])
		j += 6
		if !utf16.IsSurrogate(r) {
			return r, j
		}
		if d := utf16.DecodeRune(r, getu4(s[j:])); d != utf8.RuneError {
			return d, j + 6
		}
		return utf8.RuneError, j
	default: // '"', '\\', '/'
		return rune(c), j + 2
	}
}

// appendReprRune appends r as reprStr does inside quotes q.
func appendReprRune(b []byte, r rune, q byte) []byte {
	switch {
	case r == '\\':
		return append(b, '\\', '\\')
	case r == rune(q):
		return append(b, '\\', q)
	case r == '\n':
		return append(b, '\\', 'n')
	case r == '\r':
		return append(b, '\\', 'r')
	case r == '\t':
		return append(b, '\\', 't')
	case r < 0x20 || r == 0x7f:
		const hex = "0123456789abcdef"
		return append(b, '\\', 'x', hex[r>>4], hex[r&0xf])
	}
	return utf8.AppendRune(b, r)
}

// scanString checks the JSON string at raw[i] as encoding/json's scanner
// does (no control characters, only JSON's escapes) and returns the index
// after its closing quote and whether the decoded string holds a single
// and a double quote.
func scanString(raw []byte, i int) (end int, single, double, ok bool) {
	for i++; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == '"':
			return i + 1, single, double, true
		case c < 0x20:
			return 0, false, false, false
		case c == '\'':
			single = true
		case c == '\\':
			if i+1 >= len(raw) {
				return 0, false, false, false
			}
			switch raw[i+1] {
			case '"':
				double = true
			case '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				switch getu4(raw[i:]) {
				case -1:
					return 0, false, false, false
				case '"':
					double = true
				case '\'':
					single = true
				}
				i += 4
			default:
				return 0, false, false, false
			}
			i++
		}
	}
	return 0, false, false, false
}

// getu4 decodes \uXXXX at the start of s, or returns -1.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}
