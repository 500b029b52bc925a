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

// Repr renders a JSON value the way Python's repr() shows the decoded
// value (dict key order kept): the seed logged audit details and other
// events' data with str(dict).
func Repr(raw json.RawMessage) string {
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

// appendPyFloat appends Float(v).
func AppendFloat(b []byte, v float64) []byte {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		// Whole numbers, the common case for timestamps: no digit search.
		return append(strconv.AppendFloat(b, v, 'f', -1, 64), ".0"...)
	}
	return append(b, Float(v)...)
}

// Float is Python's repr of a float: the shortest round-tripping digits,
// fixed notation for exponents -4..15, always with a '.' or an exponent.
func Float(v float64) string {
	switch {
	case math.IsNaN(v):
		return "nan"
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	}
	e := strconv.FormatFloat(v, 'e', -1, 64) // d.ddde±XX
	mant, expStr, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expStr)
	if exp >= -4 && exp < 16 {
		s := strconv.FormatFloat(v, 'f', -1, 64)
		if !strings.ContainsRune(s, '.') {
			s += ".0"
		}
		return s
	}
	sign := "+"
	if exp < 0 {
		sign, exp = "-", -exp
	}
	return fmt.Sprintf("%se%s%02d", mant, sign, exp)
}
