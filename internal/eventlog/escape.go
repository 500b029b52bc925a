package eventlog

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"

	"github.com/agaobs/agaobs/internal/pipeline"
)

// Everything a producer sends is untrusted: a newline (or another line
// separator) in a name, an operation or a JSON body would otherwise end
// the line and let the producer write a line of its choosing, and invalid
// UTF-8 would make the log unreadable for strict readers. So every line is
// one line of valid UTF-8 whatever the input.

// appendJSONString appends s as a JSON string: RFC 8259 escaping, invalid
// UTF-8 as U+FFFD, and C1 controls and U+2028/U+2029 escaped too (line
// breaks for some readers, e.g. Python's str.splitlines and JavaScript).
func appendJSONString(b, s []byte) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		// Copy the run that needs no escaping at once.
		j := i
		for j < len(s) && s[j] >= 0x20 && s[j] < 0x7f && s[j] != '"' && s[j] != '\\' {
			j++
		}
		b = append(b, s[i:j]...)
		if i = j; i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == 0x7f:
				b = appendUEscape(b, rune(c))
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(b, `\ufffd`...)
		case lineBreakRune(r):
			b = appendUEscape(b, r)
		default:
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}

// lineBreakRune reports the non-ASCII runes some readers end a line at:
// the C1 controls (NEL among them) and the Unicode line and paragraph
// separators.
func lineBreakRune(r rune) bool {
	return r >= 0x80 && r <= 0x9f || r == 0x2028 || r == 0x2029
}

func appendUEscape(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigit(byte(r>>12)&0xf), hexDigit(byte(r>>8)&0xf), hexDigit(byte(r>>4)&0xf), hexDigit(byte(r)&0xf))
}

func hexDigit(c byte) byte { return "0123456789abcdef"[c] }

// maxDataDepth bounds the nesting of a producer's JSON in a line, which
// nests it one level deeper: every reader's decoder must be able to read
// the line (Go's stops at 10000 levels, Python's near 1000). The audit
// store keeps details to the same depth (pipeline.MaxAuditDepth).
const maxDataDepth = pipeline.MaxAuditDepth

// appendRawJSON appends a producer's JSON object compacted (whitespace,
// newlines included, removed; C1 controls and U+2028/U+2029 escaped inside
// strings, the only place valid JSON can hold them). Anything that is not
// exactly one JSON object of valid UTF-8, nested at most maxDataDepth
// levels, is appended as {"_unencodable": "<its text>"}: the line's data is
// an object, as the seed's format has it, whatever the producer wrote.
func appendRawJSON(b []byte, raw []byte, scratch *bytes.Buffer) []byte {
	if utf8.Valid(raw) && !pipeline.NestedDeeper(raw, maxDataDepth) {
		if c, ok := compactObject(raw, scratch); ok {
			return appendEscapingLineBreaks(b, c)
		}
	}
	b = append(b, `{"_unencodable":`...)
	b = appendJSONString(b, raw)
	return append(b, '}')
}

// compactObject returns raw compacted (in scratch, unless it was compact
// already), and whether that is one JSON object. A body already compact
// (aga-core's are) is checked in one pass and used as it is.
func compactObject(raw []byte, scratch *bytes.Buffer) ([]byte, bool) {
	if len(raw) > 0 && raw[0] == '{' && pipeline.IsCompactJSON(raw) {
		return raw, true
	}
	scratch.Reset()
	ok := json.Compact(scratch, raw) == nil && scratch.Len() > 0 && scratch.Bytes()[0] == '{'
	return scratch.Bytes(), ok
}

// appendEscapingLineBreaks appends c, valid UTF-8, with its C1 controls and
// U+2028/U+2029 escaped. Their encodings start with 0xC2 or 0xE2, which in
// valid UTF-8 only ever start a rune: the bytes between are copied at once.
func appendEscapingLineBreaks(b, c []byte) []byte {
	for i := 0; i < len(c); {
		j := i
		for j < len(c) && c[j] != 0xc2 && c[j] != 0xe2 {
			j++
		}
		b = append(b, c[i:j]...)
		if i = j; i == len(c) {
			break
		}
		r, n := utf8.DecodeRune(c[i:])
		if lineBreakRune(r) {
			b = appendUEscape(b, r)
		} else {
			b = append(b, c[i:i+n]...)
		}
		i += n
	}
	return b
}

// appendText appends s for a text-format line: control characters
// escaped as Python's repr shows them (\n, \r, \t, \xNN), the Unicode line
// and paragraph separators as \u2028 and \u2029, invalid UTF-8 as U+FFFD.
// Everything else, backslashes included, is kept as it is.
func appendText(b, s []byte) []byte {
	for i := 0; i < len(s); {
		// Copy the run that needs no escaping at once.
		j := i
		for j < len(s) && s[j] >= 0x20 && s[j] < 0x7f {
			j++
		}
		b = append(b, s[i:j]...)
		if i = j; i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'x', hexDigit(c>>4), hexDigit(c&0xf))
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(b, "\uFFFD"...)
		case r <= 0x9f:
			b = append(b, '\\', 'x', hexDigit(byte(r>>4)), hexDigit(byte(r)&0xf))
		case r == 0x2028 || r == 0x2029:
			b = append(b, '\\', 'u', '2', '0', '2', hexDigit(byte(r)&0xf))
		default:
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return b
}
