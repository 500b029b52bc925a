package live

import (
	"encoding/json"
	"math"
	"testing"
)

func TestNumIsNullWhenNotFinite(t *testing.T) {
	for _, c := range []struct {
		in   float64
		want string
	}{
		{1.5, "1.5"}, {0, "0"}, {-2, "-2"}, {1e21, "1e+21"},
		{math.NaN(), "null"}, {math.Inf(1), "null"}, {math.Inf(-1), "null"},
	} {
		b, err := json.Marshal(EBPFRow{OffCPUP99: Num(c.in)})
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%v: %s is not JSON: %v", c.in, b, err)
		}
		got, _ := json.Marshal(m["offcpu_p99_us"])
		if string(got) != c.want {
			t.Errorf("%v: %s, want %s", c.in, got, c.want)
		}
	}
}
