package pyfmt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// reprDecoder is Repr through encoding/json's token stream. AppendRepr
// falls back to it for any text that is not exactly one valid JSON value,
// whose output (the text itself, or a container closed at the end of the
// text) follows the decoder's quirks.
func reprDecoder(raw json.RawMessage) string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var b strings.Builder
	if err := reprValue(dec, &b); err != nil {
		return string(raw)
	}
	return b.String()
}

func reprValue(dec *json.Decoder, b *strings.Builder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case json.Delim:
		end := json.Delim('}')
		if t == '[' {
			end = ']'
			b.WriteByte('[')
		} else {
			b.WriteByte('{')
		}
		for first := true; dec.More(); first = false {
			if !first {
				b.WriteString(", ")
			}
			if end == '}' {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				b.WriteString(reprStr(fmt.Sprint(k)))
				b.WriteString(": ")
			}
			if err := reprValue(dec, b); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil && err != io.EOF {
			return err
		}
		if end == ']' {
			b.WriteByte(']')
		} else {
			b.WriteByte('}')
		}
	case string:
		b.WriteString(reprStr(t))
	case json.Number:
		if i, err := t.Int64(); err == nil && !strings.ContainsAny(string(t), ".eE") {
			b.WriteString(strconv.FormatInt(i, 10))
		} else if f, err := t.Float64(); err == nil {
			b.WriteString(Float(f))
		} else {
			b.WriteString(string(t))
		}
	case bool:
		if t {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case nil:
		b.WriteString("None")
	}
	return nil
}

// reprStr is Python's repr of a str: single quotes unless the string holds a
// single quote and no double quote.
func reprStr(s string) string {
	q := byte('\'')
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte(q)
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == rune(q):
			b.WriteByte('\\')
			b.WriteByte(q)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(q)
	return b.String()
}

// AppendFloat appends Float(v) without allocating.
func AppendFloat(b []byte, v float64) []byte {
	switch a := math.Abs(v); {
	case math.IsNaN(v):
		return append(b, "nan"...)
	case math.IsInf(v, 1):
		return append(b, "inf"...)
	case math.IsInf(v, -1):
		return append(b, "-inf"...)
	case v == math.Trunc(v) && a < 1e16:
		// Whole numbers, the common case for timestamps: no digit search.
		return append(strconv.AppendFloat(b, v, 'f', -1, 64), ".0"...)
	case a >= 1e-4 && a < 1e16:
		// The shortest digits lie in 1e-4 <= |x| < 1e16 exactly when v
		// does (parsing is monotonic): Python's fixed notation.
		return strconv.AppendFloat(b, v, 'f', -1, 64)
	}
	// Go's exponent form is Python's: d[.ddd]e±XX, at least two digits.
	return strconv.AppendFloat(b, v, 'e', -1, 64)
}

// Float is Python's repr of a float: the shortest round-tripping digits,
// fixed notation for exponents -4..15, always with a '.' or an exponent.
func Float(v float64) string {
	var buf [32]byte
	return string(AppendFloat(buf[:0], v))
}
