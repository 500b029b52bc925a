package jsonfloat

import (
	"fmt"
	"math"
	"strconv"
)

// The JSON strings that stand for non-finite floats.
const (
	NaN    = "NaN"
	PosInf = "+Inf"
	NegInf = "-Inf"
)

// nonFinite returns v's string under the policy, or ok false when v is
// finite.
func nonFinite(v float64) (s string, ok bool) {
	switch {
	case math.IsNaN(v):
		return NaN, true
	case math.IsInf(v, 1):
		return PosInf, true
	case math.IsInf(v, -1):
		return NegInf, true
	}
	return "", false
}

// Value returns v for encoding/json: v itself when finite, else its
// string.
func Value(v float64) any {
	if s, ok := nonFinite(v); ok {
		return s
	}
	return v
}

// Float is a float64 that encodes under the policy, for struct fields.
type Float float64

// MarshalJSON implements json.Marshaler.
func (f Float) MarshalJSON() ([]byte, error) {
	return Append(nil, float64(f)), nil
}

// UnmarshalJSON implements json.Unmarshaler: a number, or one of the
// policy's strings, so stored values read back.
func (f *Float) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case `"` + NaN + `"`:
		*f = Float(math.NaN())
	case `"` + PosInf + `"`:
		*f = Float(math.Inf(1))
	case `"` + NegInf + `"`:
		*f = Float(math.Inf(-1))
	default:
		v, err := strconv.ParseFloat(string(b), 64)
		if err != nil {
			return fmt.Errorf("jsonfloat: %s is neither a number nor NaN, +Inf, -Inf", b)
		}
		*f = Float(v)
	}
	return nil
}

// Replace returns v with every non-finite float64 or float32 replaced by
// its string, looking inside map[string]any, []any, []float64 and
// []float32 (copied, never modified in place). Other values are returned
// as they are.
func Replace(v any) any {
	switch x := v.(type) {
	case float64:
		return Value(x)
	case float32:
		return Value(float64(x))
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = Replace(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = Replace(e)
		}
		return s
	case []float64:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = Value(e)
		}
		return s
	case []float32:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = Value(float64(e))
		}
		return s
	}
	return v
}

// AppendNonFinite appends v's quoted string and reports true when v is
// not finite; a finite v leaves b as it is, for encoders with their own
// number format.
func AppendNonFinite(b []byte, v float64) ([]byte, bool) {
	s, ok := nonFinite(v)
	if !ok {
		return b, false
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), true
}

// Append appends v under the policy, a finite v exactly as encoding/json
// writes a float64.
func Append(b []byte, v float64) []byte {
	if out, ok := AppendNonFinite(b, v); ok {
		return out
	}
	// encoding/json's float64 format (ES6): 'f' between 1e-6 and 1e21,
	// 'e' outside it with a two-digit exponent shortened to one digit.
	abs := math.Abs(v)
	f := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		f = 'e'
	}
	n := len(b)
	b = strconv.AppendFloat(b, v, f, -1, 64)
	if f == 'e' {
		// clean up e-09 to e-9
		if m := len(b) - n; m >= 4 && b[len(b)-4] == 'e' && b[len(b)-3] == '-' && b[len(b)-2] == '0' {
			b[len(b)-2] = b[len(b)-1]
			b = b[:len(b)-1]
		}
	}
	return b
}
