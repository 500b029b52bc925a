package pyfmt

import "testing"

func TestPyFloat(t *testing.T) {
	for v, want := range map[float64]string{1: "1.0", 0.1: "0.1", 1e-5: "1e-05", 1e16: "1e+16", 123456.75: "123456.75", 1e22: "1e+22", -2.5e-7: "-2.5e-07", 1e15: "1000000000000000.0"} {
		if got := Float(v); got != want {
			t.Errorf("Float(%v) = %s, want %s", v, got, want)
		}
	}
}

func TestFormat(t *testing.T) {
	args := map[string]any{"value": 1234.5678, "threshold": 1000.0, "metric": "latency_p99", "name": "slo", "n": 3}
	cases := []struct{ tmpl, want string }{
		{"P99 {value:.1f}µs exceeds {threshold:.0f}µs", "P99 1234.6µs exceeds 1000µs"},
		{"{value:.1%}", "123456.8%"},
		{"{metric} on {name}", "latency_p99 on slo"},
		{"{value}", "1234.5678"},
		{"{threshold}", "1000.0"},
		{"{value:,.2f}", "1,234.57"},
		{"{value:10.1f}|", "    1234.6|"},
		{"{n:d} {n}", "3 3"},
		{"{{literal}} {value:.0f}", "{literal} 1235"},
		{"{value:e}", "1.234568e+03"},
	}
	for _, tc := range cases {
		got, err := Format(tc.tmpl, args)
		if err != nil || got != tc.want {
			t.Errorf("Format(%q) = %q, %v; want %q", tc.tmpl, got, err, tc.want)
		}
	}
	for _, bad := range []string{"{nope}", "{value:.1q}", "{value", "}"} {
		if _, err := Format(bad, args); err == nil {
			t.Errorf("Format(%q) succeeded", bad)
		}
	}
}
