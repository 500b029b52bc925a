package e2e_test

import (
	"strings"
	"testing"
)

// The test collector appends a JSON line per batch while the test polls the
// file; a read in the middle of a write must not hand back half a line (CI
// failed TestOTLPEndToEnd with "unexpected end of JSON input" this way).
func TestCompleteLines(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"empty", "", nil},
		{"partial only", `{"resourceLogs":[{"res`, nil},
		{"complete", "{\"a\":1}\n", []string{`{"a":1}`}},
		{"complete and partial", "{\"a\":1}\n{\"b\":", []string{`{"a":1}`}},
		{"record without its newline yet", "{\"a\":1}\n{\"b\":2}", []string{`{"a":1}`}},
		{"blank lines", "\n{\"a\":1}\n\n  \n{\"b\":2}\n", []string{`{"a":1}`, `{"b":2}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, l := range completeLines([]byte(tc.in)) {
				got = append(got, string(l))
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
				t.Fatalf("completeLines(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
