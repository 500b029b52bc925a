package schema

import "testing"

func TestNames(t *testing.T) {
	cases := []struct {
		prefix  string
		naming  Naming
		name    string
		divisor float64
	}{
		{"aga", Compat, "aga_forward_latency_us", 1},
		{"llm", Conventional, "llm_forward_latency_seconds", 1e6},
	}
	for _, c := range cases {
		n, err := NewNames(c.prefix, c.naming, "forward_latency", "forward")
		if err != nil {
			t.Fatal(err)
		}
		if got := n.Name("forward_latency"); got != c.name {
			t.Errorf("%s/%s: name %q, want %q", c.prefix, c.naming, got, c.name)
		}
		if got := n.Divisor("forward_latency"); got != c.divisor {
			t.Errorf("%s/%s: divisor %v, want %v", c.prefix, c.naming, got, c.divisor)
		}
		if n.Divisor("forward") != 1 {
			t.Errorf("%s/%s: a unitless family has divisor %v", c.prefix, c.naming, n.Divisor("forward"))
		}
	}
	if _, err := NewNames("aga", Compat, "no_such_family"); err == nil {
		t.Error("a missing required family was accepted")
	}
}
