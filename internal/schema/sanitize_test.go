package schema

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestLabelValue(t *testing.T) {
	long := strings.Repeat("é", MaxLabelValueLen) // 2 bytes a rune
	for _, tc := range []struct {
		name, in, want string
	}{
		{"valid", "worker-tp0", "worker-tp0"},
		{"empty", "", ""},
		{"escapes are valid", "a\"b\\c\nd\x00\x7f", "a\"b\\c\nd\x00\x7f"},
		{"replacement char kept", "w\uFFFD", "w\uFFFD"},
		{"invalid byte", "w\xff", "w\uFFFD"},
		{"each invalid byte", "w\xff\xfe", "w\uFFFD\uFFFD"},
		{"truncated sequence", "a\xc3", "a\uFFFD"},
		{"surrogate half", "\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"},
		{"overlong encoding", "\xc0\xaf", "\uFFFD\uFFFD"},
		{"cut at a rune boundary", long, long[:MaxLabelValueLen]},
		{"cut, one byte short of a rune", "x" + long, "x" + long[:MaxLabelValueLen-2]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := LabelValue(tc.in)
			if got != tc.want {
				t.Errorf("LabelValue(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if !utf8.ValidString(got) || len(got) > MaxLabelValueLen {
				t.Errorf("LabelValue(%q) = %q: invalid or too long", tc.in, got)
			}
		})
	}
	if got := LabelValues([]string{"a\xff", "b"}); got[0] != "a\uFFFD" || got[1] != "b" {
		t.Errorf("LabelValues = %q", got)
	}
	// The scrape path calls it per label value: no allocation when valid.
	if n := testing.AllocsPerRun(100, func() { _ = LabelValue("worker-tp0/layer-12") }); n != 0 {
		t.Errorf("LabelValue allocates %v times on a valid value", n)
	}
}
