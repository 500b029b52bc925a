package eventlog

import (
	"encoding/json"
	"math"
	"testing"
)

// Finite floats read as Python's json module writes them; non-finite ones
// follow package jsonfloat, so a line stays valid JSON.
func TestAppendJSONFloat(t *testing.T) {
	for _, c := range []struct {
		v    float64
		want string
	}{
		{1, `1.0`}, {0.412, `0.412`}, {1e22, `1e+22`}, {math.Copysign(0, -1), `-0.0`},
		{math.NaN(), `"NaN"`}, {math.Inf(1), `"+Inf"`}, {math.Inf(-1), `"-Inf"`},
	} {
		got := appendJSONFloat(nil, c.v)
		if string(got) != c.want || !json.Valid(got) {
			t.Errorf("appendJSONFloat(%v) = %s, want %s", c.v, got, c.want)
		}
	}
}
