package pyfmt

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
)

// reprInputs cover every JSON value type, every escape, quotes that pick
// the other quote character, invalid UTF-8, surrogates, numbers at the
// edges of int64 and float64, and broken text (the decoder's output).
var reprInputs = []string{
	`{"id":"k-1","reliability":0.93}`,
	`{"id":"k1","pinned":false,"metadata":{"source":"it's"},"ns":null,"r":0.9,"n":1,"big":1e22}`,
	`{"x":[1,2.5,"y"]}`, `[]`, `{}`, ` { } `, "\t[ 1 ,\n2 ]\r\n", `[[[]],{}]`, `{"a":{"b":{"c":[true,false,null]}}}`,
	`"plain"`, `"it's"`, `"say \"hi\""`, `"both ' and \""`, `"\u0027"`, `"\u0022"`, `"\u0027\u0022"`,
	`"\\ \/ \b \f \n \r \t"`, `"\u0000\u001f\u007f\u0080\u009f\u00ff"`, `"\u2028\u2029"`, "\"\x7f\"",
	`"\ud83d\ude00"`, `"\ud83d"`, `"\ude00"`, `"\ud83dx"`, `"\ud83d\u0041"`, `"\ud83d\ud83d\ude00"`, `"\uDEAD\uBEEF"`,
	"\"\xff\xfe\"", "\"a\xc3\"", "\"\xed\xa0\x80\"", "\"\xe2\x80\xa8\"", "\"μs ✓\"", "\"\xef\xbf\xbd\"",
	`0`, `-0`, `1`, `-1`, `9223372036854775807`, `9223372036854775808`, `-9223372036854775808`, `-9223372036854775809`,
	`123456789012345678901234567890`, `0.1`, `-0.0`, `1.0`, `1e2`, `1E2`, `1e+2`, `1e-2`, `1.5e-7`, `1e400`, `-1e400`, `1e-400`,
	`2.5e15`, `1e16`, `123456.75`, `0.0001`, `0.00001`, `true`, `false`, `null`,
	// Broken text: the decoder's quirks (closing at EOF, the text as is).
	``, ` `, `{`, `[`, `[1`, `{"a":1`, `{"a":[1`, `{"a"`, `{"a":`, `[1,`, `[1,]`, `[,1]`, `{"a":1,}`, `{1:2}`,
	`[1}`, `{"a":1]`, `{"a" 1}`, `[1 2]`, `tru`, `truex`, `nul`, `01`, `-`, `1.`, `.5`, `1e`, `+1`, `"\x"`, `"\'"`,
	`"\u12"`, `"\u12g4"`, "\"a\nb\"", `"unterminated`, `{"a":1} trailing`, `{"a":1}{"b":2}`, `1 2`, `[1]x`, `"a"b`,
	`NaN`, `Infinity`, `{"a":NaN}`, "\xff", `{"a":"b"`, `{"a":"b",`,
}

func TestAppendReprMatchesDecoder(t *testing.T) {
	for _, in := range reprInputs {
		want := reprDecoder(json.RawMessage(in))
		if got := string(AppendRepr([]byte("prefix:"), []byte(in))); got != "prefix:"+want {
			t.Errorf("AppendRepr(%q) = %q, want %q", in, got, "prefix:"+want)
		}
	}
}

// Valid JSON never takes the decoder path: that is the point.
func TestAppendReprFastPathTakesValidJSON(t *testing.T) {
	for _, in := range reprInputs {
		if !json.Valid([]byte(in)) {
			continue
		}
		if _, ok := appendReprFast(nil, []byte(in)); !ok {
			t.Errorf("%q is valid JSON but went through the decoder", in)
		}
	}
	deep := strings.Repeat("[", maxReprDepth+1) + strings.Repeat("]", maxReprDepth+1)
	if got, want := Repr(json.RawMessage(deep)), reprDecoder(json.RawMessage(deep)); got != want {
		t.Errorf("deep value: %.40q…, want %.40q…", got, want)
	}
}

// Some fixed renderings, to pin the decoder reference itself down.
func TestRepr(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"id":"k1","pinned":false,"metadata":{"source":"it's"},"ns":null,"r":0.9,"n":1,"big":1e22}`,
			`{'id': 'k1', 'pinned': False, 'metadata': {'source': "it's"}, 'ns': None, 'r': 0.9, 'n': 1, 'big': 1e+22}`},
		{`"both ' and \""`, `'both \' and "'`},
		{`"\\\n\u0001"`, `'\\\n\x01'`},
		{`-0`, `0`},
		{`1e400`, `1e400`},
		{`[1`, `[1]`},
		{`[1,]`, `[1,]`},
	}
	for _, tc := range cases {
		if got := Repr(json.RawMessage(tc.in)); got != tc.want {
			t.Errorf("Repr(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestAppendReprAllocs(t *testing.T) {
	raw := []byte(`{"id":"k-1","reliability":0.93,"n":12,"ok":true,"tags":["a","it's"]}`)
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { AppendRepr(buf, raw) }); n != 0 {
		t.Errorf("%v allocations per AppendRepr", n)
	}
}

// FuzzAppendRepr: the byte-level renderer and the decoder agree on every
// text, and every valid JSON text takes the byte-level path.
func FuzzAppendRepr(f *testing.F) {
	for _, in := range reprInputs {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		want := reprDecoder(json.RawMessage(in))
		if got := string(AppendRepr(nil, []byte(in))); got != want {
			t.Fatalf("AppendRepr(%q) = %q, want %q", in, got, want)
		}
		if json.Valid([]byte(in)) && strings.Count(in, "[")+strings.Count(in, "{") < maxReprDepth {
			if _, ok := appendReprFast(nil, []byte(in)); !ok {
				t.Fatalf("%q is valid JSON but went through the decoder", in)
			}
		}
	})
}

// floatReference is Float before AppendFloat stopped allocating.
func floatReference(v float64) string {
	switch {
	case math.IsNaN(v):
		return "nan"
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	}
	e := strconv.FormatFloat(v, 'e', -1, 64)
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

var floatInputs = []float64{
	0, math.Copysign(0, -1), 1, -1, 0.1, 0.9, 0.93, 1.5, 123.45, 1e-4, 1.5e-4, 9.99e-5, 1e-5, 1e15, 1e15 + 0.5, 9999999999999998,
	1e16, 1.2345678901234567e15, 1764252237.1357925, 1764252237.5, 1e22, 1e100, -2.5e-7, 5e-324, math.MaxFloat64,
	math.SmallestNonzeroFloat64, 123456.75, 100.5, 0.000123, math.Pi, -math.E, math.NaN(), math.Inf(1), math.Inf(-1),
	// The edges of the notations and of whole numbers.
	1e-4, -1e-4, math.Nextafter(1e-4, 0), math.Nextafter(1e-4, 1), 1e16 - 2, math.Nextafter(1e16, 0), -math.Nextafter(1e16, 0),
	9007199254740994, 1<<53 + 0.5, 4503599627370495.5, 1e15 - 0.125, 0.8999999761581421, 1764252237135792431 / 1e9,
}

func TestAppendFloatMatchesReference(t *testing.T) {
	for _, v := range floatInputs {
		want := floatReference(v)
		if got := string(AppendFloat([]byte("x"), v)); got != "x"+want {
			t.Errorf("AppendFloat(%v) = %q, want %q", v, got, "x"+want)
		}
		if got := Float(v); got != want {
			t.Errorf("Float(%v) = %q, want %q", v, got, want)
		}
	}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { AppendFloat(buf, 1764252237.1357925) }); n != 0 {
		t.Errorf("%v allocations per AppendFloat", n)
	}
}

func FuzzAppendFloat(f *testing.F) {
	for _, v := range floatInputs {
		f.Add(math.Float64bits(v))
	}
	f.Fuzz(func(t *testing.T, bits uint64) {
		v := math.Float64frombits(bits)
		if got, want := string(AppendFloat(nil, v)), floatReference(v); got != want {
			t.Fatalf("AppendFloat(%v) = %q, want %q", v, got, want)
		}
	})
}
