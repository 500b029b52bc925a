package schema

import (
	"strings"
	"unicode/utf8"
)

// MaxLabelValueLen bounds one label value in bytes. Producers control most
// label values (names, identity fields, ring file names, operation names);
// upstream parsers cut them far shorter, this only keeps a value that slipped
// through from costing memory per series and from tripping a scraper's
// label_value_length_limit, which fails the whole target.
const MaxLabelValueLen = 1024

// LabelValue returns s as a label value every exposition format accepts:
// valid UTF-8 (each invalid byte becomes U+FFFD) of at most
// MaxLabelValueLen bytes, cut at a rune boundary. Control characters, quotes and backslashes are valid
// and left to the encoders to escape. The common case (short, valid) returns
// s without allocating.
//
// Every label value the agent builds from data it did not write itself must
// pass through here: client_golang's const metrics panic on invalid UTF-8
// (a crashed agent), its registry drops other metrics with invalid values
// (lost series), and the exporter's hand-built label pairs are encoded
// unchecked (an unparseable exposition: Prometheus marks the target down).
func LabelValue(s string) string {
	if len(s) <= MaxLabelValueLen && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(min(len(s), MaxLabelValueLen))
	for _, r := range s { // an invalid byte ranges as utf8.RuneError, width 1
		if b.Len()+utf8.RuneLen(r) > MaxLabelValueLen {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// LabelValues applies LabelValue to each of vs, in place, and returns vs:
// for collectors that pass label values to const metrics as a list.
func LabelValues(vs []string) []string {
	for i, v := range vs {
		vs[i] = LabelValue(v)
	}
	return vs
}
