package jsonfloat

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// The policy, one row per kind of float: what Value gives encoding/json,
// and what every form (Value, Float, Append, Replace) encodes to.
func TestPolicy(t *testing.T) {
	cases := []struct {
		name string
		v    float64
		want string
	}{
		{"NaN", math.NaN(), `"NaN"`},
		{"+Inf", math.Inf(1), `"+Inf"`},
		{"-Inf", math.Inf(-1), `"-Inf"`},
		{"zero", 0, `0`},
		{"negative zero", math.Copysign(0, -1), `-0`},
		{"integer", 42, `42`},
		{"negative integer", -7, `-7`},
		{"fraction", 0.25, `0.25`},
		{"large", 1e21, `1e+21`},
		{"below 1e21", 1e20, `100000000000000000000`},
		{"max", math.MaxFloat64, `1.7976931348623157e+308`},
		{"small", 1e-7, `1e-7`},
		{"at 1e-6", 1e-6, `0.000001`},
		{"smallest", math.SmallestNonzeroFloat64, `5e-324`},
		{"negative small", -1.5e-9, `-1.5e-9`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			check := func(form string, got []byte, err error) {
				t.Helper()
				if err != nil {
					t.Fatalf("%s: %v", form, err)
				}
				if string(got) != c.want {
					t.Errorf("%s = %s, want %s", form, got, c.want)
				}
				if !json.Valid(got) {
					t.Errorf("%s = %s: not valid JSON", form, got)
				}
			}
			b, err := json.Marshal(Value(c.v))
			check("Value", b, err)
			b, err = json.Marshal(Float(c.v))
			check("Float", b, err)
			check("Append", Append(nil, c.v), nil)
			b, err = json.Marshal(Replace(c.v))
			check("Replace", b, err)
			b, err = json.Marshal(Replace(float32(c.v)))
			if f32 := float32(c.v); float64(f32) == c.v || f32 != f32 {
				check("Replace(float32)", b, err)
			}

			// Finite values are numbers exactly as encoding/json writes
			// them; the strings read back with strconv.ParseFloat.
			out, nonFinite := AppendNonFinite([]byte("x"), c.v)
			if finite := !math.IsNaN(c.v) && !math.IsInf(c.v, 0); finite {
				std, err := json.Marshal(c.v)
				if err != nil || string(std) != c.want {
					t.Errorf("encoding/json writes %s (%v), the table says %s", std, err, c.want)
				}
				if nonFinite || string(out) != "x" {
					t.Errorf("AppendNonFinite = %q, %v for a finite value", out, nonFinite)
				}
			} else {
				if !nonFinite || string(out) != "x"+c.want {
					t.Errorf("AppendNonFinite = %q, %v", out, nonFinite)
				}
				s, _ := strconv.Unquote(c.want)
				back, err := strconv.ParseFloat(s, 64)
				if err != nil || math.IsNaN(back) != math.IsNaN(c.v) || (!math.IsNaN(back) && back != c.v) {
					t.Errorf("ParseFloat(%q) = %v, %v", s, back, err)
				}
			}
		})
	}
}

// Replace walks the containers health fields and event data use, copies
// them and leaves other values alone.
func TestReplace(t *testing.T) {
	type named float64
	in := map[string]any{
		"m":   map[string]any{"x": math.NaN(), "ok": 1.5},
		"s":   []any{1.5, math.Inf(1), "text", nil},
		"f":   []float64{math.NaN(), 2},
		"f32": []float32{float32(math.Inf(-1)), 0.5},
		"i":   3,
		"b":   true,
	}
	b, err := json.Marshal(Replace(in))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"b":true,"f":["NaN",2],"f32":["-Inf",0.5],"i":3,"m":{"ok":1.5,"x":"NaN"},"s":[1.5,"+Inf","text",null]}`
	if string(b) != want {
		t.Errorf("Replace = %s\nwant      %s", b, want)
	}
	if v := in["m"].(map[string]any)["x"].(float64); !math.IsNaN(v) {
		t.Errorf("Replace modified its input: %v", v)
	}
	// A type Replace does not know is returned as it is (encoding/json
	// still rejects a non-finite named float; callers fall back).
	if _, ok := Replace(named(math.NaN())).(named); !ok {
		t.Error("Replace changed a named float type")
	}
}

// Float inside a struct, as webhook bodies use it.
func TestFloatField(t *testing.T) {
	b, err := json.Marshal(struct {
		V Float `json:"v"`
		T Float `json:"t"`
	}{Float(math.NaN()), 0.95})
	if err != nil || string(b) != `{"v":"NaN","t":0.95}` {
		t.Errorf("got %s, %v", b, err)
	}
}

// Append writes every finite float64 as encoding/json does.
func TestAppendMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 100000; i++ {
		v := math.Float64frombits(r.Uint64())
		if i%2 == 0 {
			v = r.NormFloat64() * math.Pow(10, float64(r.IntN(60)-30))
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		std, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got := Append([]byte("["), v); string(got[1:]) != string(std) {
			t.Fatalf("Append(%v) = %s, encoding/json %s", v, got[1:], std)
		}
	}
}

// Float reads back what it writes, non-finite values included.
func TestFloatRoundTrip(t *testing.T) {
	for _, v := range []float64{0, -1.5, 1e300, math.NaN(), math.Inf(1), math.Inf(-1)} {
		b, err := json.Marshal(Float(v))
		if err != nil {
			t.Fatal(err)
		}
		var got Float
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if g := float64(got); g != v && !(math.IsNaN(g) && math.IsNaN(v)) {
			t.Errorf("%v → %s → %v", v, b, g)
		}
	}
	var f Float
	if err := json.Unmarshal([]byte(`"nan"`), &f); err == nil {
		t.Error(`"nan" accepted: only the policy's spellings are`)
	}
}
