package pipeline

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// decodeAudit decodes an AUDIT record body (u64 lost_before, then the
// aga-core JSON object). It never fails: the audit trail promises that
// every AUDIT record a ring delivers is stored, so a body that is not what
// the format says is sanitized instead (fields of the wrong type get their
// defaults, the reasons go to EncodeError) and Raw keeps the bytes as
// received for the store to attach. The producer is untrusted: nothing in
// the body may make the record disappear.
func decodeAudit(body []byte) *Audit {
	a := &Audit{Success: true, Operation: "unknown"}
	obj := body
	if len(body) < 8 {
		a.Raw = append(json.RawMessage(nil), body...)
		a.Details = json.RawMessage("{}")
		a.EncodeError = fmt.Sprintf("body is %d bytes, too short for its 8-byte lost_before", len(body))
		return a
	}
	a.LostBefore = binary.LittleEndian.Uint64(body)
	obj = body[8:]
	// Raw is copied out of the ring; Details below alias it (or
	// Unmarshal's copy of them).
	a.Raw = append(json.RawMessage(nil), obj...)
	if utf8.Valid(obj) && !NestedDeeper(obj, MaxAuditDepth) && decodeAuditObject(a, a.Raw) {
		// The common case: one pass (decodeAuditObject), or one Unmarshal
		// where that pass declines.
		if len(a.Details) == 0 || string(a.Details) == "null" {
			a.Details = json.RawMessage("{}")
		} else if !isObject(a.Details) {
			a.EncodeError = "details: not a JSON object"
			a.Details = unencodable(a.Details)
		}
		return a
	}
	*a = Audit{Success: true, Operation: "unknown", LostBefore: a.LostBefore, Raw: a.Raw}
	sanitizeAudit(a, obj)
	return a
}

// sanitizeAudit decodes obj field by field, keeping what has the right
// type. Problems are listed in a.EncodeError.
func sanitizeAudit(a *Audit, obj []byte) {
	var why []string
	if !utf8.Valid(obj) {
		why = append(why, "invalid UTF-8 replaced by U+FFFD")
		obj = bytes.ToValidUTF8(obj, []byte("\uFFFD"))
	}
	var f struct {
		Operation json.RawMessage `json:"operation"`
		Details   json.RawMessage `json:"details"`
		Success   json.RawMessage `json:"success"`
		Error     json.RawMessage `json:"error"`
		Timestamp json.RawMessage `json:"timestamp"`
	}
	if !isObject(obj) {
		why = append(why, "body: not a JSON object")
		a.Details = json.RawMessage("{}")
		a.EncodeError = strings.Join(why, "; ")
		return
	}
	if err := json.Unmarshal(obj, &f); err != nil {
		why = append(why, "body: "+err.Error())
		a.Details = json.RawMessage("{}")
		a.EncodeError = strings.Join(why, "; ")
		return
	}
	if isSet(f.Operation) {
		if json.Unmarshal(f.Operation, &a.Operation) != nil {
			a.Operation = "unknown"
			why = append(why, "operation: not a string")
		}
	}
	switch {
	case !isSet(f.Details):
		a.Details = json.RawMessage("{}")
	case NestedDeeper(f.Details, MaxAuditDepth-1):
		// Stored, served and logged inside other objects: keep every
		// reader's decoder (Go's stops at 10000 levels, Python's near
		// 1000) able to read the record. Raw keeps the text.
		a.Details = json.RawMessage("{}")
		why = append(why, fmt.Sprintf("details: nested deeper than %d levels", MaxAuditDepth-1))
	case isObject(f.Details):
		a.Details = f.Details
	default:
		a.Details = unencodable(f.Details)
		why = append(why, "details: not a JSON object")
	}
	switch s := string(f.Success); {
	case !isSet(f.Success):
	case s == "true" || s == "false":
		a.Success = s == "true"
	default:
		// Success that cannot be read is not claimed.
		a.Success = false
		why = append(why, "success: not a boolean")
	}
	if isSet(f.Error) {
		var e string
		if json.Unmarshal(f.Error, &e) != nil {
			// Free text anyway: keep the value's JSON text.
			var c bytes.Buffer
			_ = json.Compact(&c, f.Error) // valid: Unmarshal checked it
			e = c.String()
			why = append(why, "error: not a string or null")
		}
		a.Error = &e
	}
	if isSet(f.Timestamp) {
		ts, err := strconv.ParseFloat(string(f.Timestamp), 64)
		switch {
		case f.Timestamp[0] != '-' && (f.Timestamp[0] < '0' || f.Timestamp[0] > '9'):
			why = append(why, "timestamp: not a number")
		case err != nil || math.IsInf(ts, 0) || math.IsNaN(ts):
			why = append(why, "timestamp: not a finite number")
		default:
			a.Timestamp = ts
		}
	}
	a.EncodeError = strings.Join(why, "; ")
}

// MaxAuditDepth bounds the nesting of an audit body (objects and arrays,
// the body's own object included). The stock clients send at most 64
// levels of details.
const MaxAuditDepth = 128

// NestedDeeper reports whether a JSON text nests objects and arrays more
// than limit levels deep (brackets inside strings do not count): decoders
// of other languages give up far earlier than Go's.
func NestedDeeper(b []byte, limit int) bool {
	if bytes.Count(b, []byte("{"))+bytes.Count(b, []byte("[")) <= limit {
		return false // the common case: too few brackets to tell apart
	}
	depth, inStr, esc := 0, false, false
	for _, c := range b {
		switch {
		case inStr:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			if depth++; depth > limit {
				return true
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return false
}

// isSet reports whether a field was present and not null.
func isSet(v json.RawMessage) bool { return len(v) > 0 && string(v) != "null" }

// isObject reports whether a JSON text starts an object.
func isObject(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

// unencodable keeps a value that is not an object as text, the store's
// convention for details it cannot keep as they are.
func unencodable(v json.RawMessage) json.RawMessage {
	q, _ := json.Marshal(string(v))
	return json.RawMessage(`{"_unencodable":` + string(q) + `}`)
}

// decodeAuditObject sets a's fields from obj as json.Unmarshal(obj, a)
// would and reports whether that Unmarshal would succeed with obj a JSON
// object. The common body (an object whose keys are the field names as
// written, values of the fields' types) is read in one pass over obj,
// which a's Details then alias (obj must be the record's own copy, Raw);
// anything else is left to json.Unmarshal, from a's defaults.
func decodeAuditObject(a *Audit, obj []byte) bool {
	def := *a
	if auditFields(a, obj) {
		return true
	}
	*a = def
	return json.Unmarshal(obj, a) == nil && isObject(obj)
}

// auditFields is decodeAuditObject's one pass. It returns false, leaving
// a in any state, where it cannot tell that json.Unmarshal would succeed
// and set exactly what it set: invalid JSON, a value of the wrong type, a
// key with an escape or one that matches a field only case-insensitively.
func auditFields(a *Audit, obj []byte) bool {
	i := skipJSONSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return false
	}
	i = skipJSONSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return skipJSONSpace(obj, i+1) == len(obj)
	}
	for {
		if i >= len(obj) || obj[i] != '"' {
			return false
		}
		end, esc := scanJSONString(obj, i)
		if end < 0 || esc {
			return false
		}
		key := obj[i+1 : end-1]
		if i = skipJSONSpace(obj, end); i >= len(obj) || obj[i] != ':' {
			return false
		}
		i = skipJSONSpace(obj, i+1)
		end, _ = scanJSONValue(obj, i)
		if end < 0 || !a.setField(key, obj[i:end:end]) {
			return false
		}
		if i = skipJSONSpace(obj, end); i >= len(obj) {
			return false
		}
		switch obj[i] {
		case ',':
			i = skipJSONSpace(obj, i+1)
		case '}':
			return skipJSONSpace(obj, i+1) == len(obj)
		default:
			return false
		}
	}
}

// setField stores one member of the body as json.Unmarshal would (a null
// leaves a value field as it is and sets the pointer nil); false where
// Unmarshal would fail or match the key to a field differently.
func (a *Audit) setField(key, v []byte) bool {
	null := string(v) == "null"
	switch string(key) {
	case "operation":
		if !null {
			s, ok := jsonStringValue(v)
			if !ok {
				return false
			}
			a.Operation = s
		}
	case "details":
		a.Details = v
	case "success":
		switch string(v) {
		case "true", "false":
			a.Success = v[0] == 't'
		case "null":
		default:
			return false
		}
	case "error":
		if null {
			a.Error = nil
			return true
		}
		s, ok := jsonStringValue(v)
		if !ok {
			return false
		}
		a.Error = &s
	case "timestamp":
		if null {
			return true
		}
		if v[0] != '-' && (v[0] < '0' || v[0] > '9') {
			return false
		}
		ts, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return false
		}
		a.Timestamp = ts
	default:
		// Unmarshal matches keys to fields case-insensitively (with
		// Unicode folding): leave such keys to it.
		for _, c := range key {
			if c >= utf8.RuneSelf {
				return false
			}
		}
		for _, f := range [...]string{"operation", "details", "success", "error", "timestamp"} {
			if strings.EqualFold(string(key), f) {
				return false
			}
		}
	}
	return true
}

// jsonStringValue returns a JSON string's value (v is a scanned value).
func jsonStringValue(v []byte) (string, bool) {
	if v[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return string(v[1 : len(v)-1]), true // valid UTF-8: the body was checked
	}
	var s string
	return s, json.Unmarshal(v, &s) == nil
}

// IsCompactJSON reports whether b is exactly one valid JSON value with no
// whitespace outside its strings: what json.Compact would return for it
// unchanged. It checks what encoding/json's scanner checks (not UTF-8
// inside strings), in one pass.
func IsCompactJSON(b []byte) bool {
	end, compact := scanJSONValue(b, 0)
	return end == len(b) && compact
}

// maxJSONDepth is encoding/json's nesting limit.
const maxJSONDepth = 10000

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanJSONValue scans the JSON value starting at b[i] (no whitespace
// before it) and returns the index after it, or -1 if there is no valid
// value there, and whether it holds no whitespace outside strings.
func scanJSONValue(b []byte, i int) (end int, compact bool) {
	var stackBuf [32]byte
	stack := stackBuf[:0] // '{' or '[' per open container
	compact = true
	for {
		// A value starts at b[i].
		if i >= len(b) {
			return -1, false
		}
		switch c := b[i]; {
		case c == '{' || c == '[':
			if len(stack) >= maxJSONDepth {
				return -1, false
			}
			j := skipJSONSpace(b, i+1)
			compact = compact && j == i+1
			if i = j; i < len(b) && b[i] == c+2 { // '}' or ']'
				i++
				break
			}
			stack = append(stack, c)
			if c == '{' {
				if i = scanJSONKey(b, i, &compact); i < 0 {
					return -1, false
				}
			}
			continue
		case c == '"':
			if i, _ = scanJSONString(b, i); i < 0 {
				return -1, false
			}
		case c == '-' || c >= '0' && c <= '9':
			if i = scanJSONNumber(b, i); i < 0 {
				return -1, false
			}
		case c == 't':
			if !bytes.HasPrefix(b[i:], []byte("true")) {
				return -1, false
			}
			i += 4
		case c == 'f':
			if !bytes.HasPrefix(b[i:], []byte("false")) {
				return -1, false
			}
			i += 5
		case c == 'n':
			if !bytes.HasPrefix(b[i:], []byte("null")) {
				return -1, false
			}
			i += 4
		default:
			return -1, false
		}
		// After a value: close containers, then go on to the next member
		// or element.
		for {
			if len(stack) == 0 {
				return i, compact
			}
			j := skipJSONSpace(b, i)
			if compact = compact && j == i; j >= len(b) {
				return -1, false
			}
			i = j
			top := stack[len(stack)-1]
			if b[i] == top+2 {
				stack = stack[:len(stack)-1]
				i++
				continue
			}
			if b[i] != ',' {
				return -1, false
			}
			j = skipJSONSpace(b, i+1)
			compact = compact && j == i+1
			i = j
			if top == '{' {
				if i = scanJSONKey(b, i, &compact); i < 0 {
					return -1, false
				}
			}
			break
		}
	}
}

// scanJSONKey scans a member's `"key":` and the whitespace after it,
// returning the index of its value (-1: not a key). Whitespace clears
// compact.
func scanJSONKey(b []byte, i int, compact *bool) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i, _ = scanJSONString(b, i); i < 0 {
		return -1
	}
	j := skipJSONSpace(b, i)
	if j >= len(b) || b[j] != ':' {
		return -1
	}
	k := skipJSONSpace(b, j+1)
	if j != i || k != j+1 {
		*compact = false
	}
	return k
}

// scanJSONString scans the string starting at b[i] ('"') and returns the
// index after its closing quote (-1: invalid) and whether it has escapes.
func scanJSONString(b []byte, i int) (int, bool) {
	esc := false
	for i++; i < len(b); i++ {
		for i < len(b) && jsonPlain[b[i]] {
			i++ // the common bytes, without the cases below
		}
		if i >= len(b) {
			break
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, esc
		case c == '\\':
			esc = true
			if i++; i >= len(b) {
				return -1, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return -1, false
				}
				for _, h := range b[i+1 : i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return -1, false
					}
				}
				i += 4
			default:
				return -1, false
			}
		case c < 0x20:
			return -1, false
		}
	}
	return -1, false
}

// jsonPlain holds the bytes a JSON string holds as they are: not a
// control character, a quote or a backslash.
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scanJSONNumber scans the number starting at b[i] and returns the index
// after it (-1: invalid).
func scanJSONNumber(b []byte, i int) int {
	digits := func(j int) int {
		k := j
		for k < len(b) && b[k] >= '0' && b[k] <= '9' {
			k++
		}
		if k == j {
			return -1
		}
		return k
	}
	if b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return -1
	case b[i] == '0':
		i++
	default:
		if i = digits(i); i < 0 {
			return -1
		}
	}
	if i < len(b) && b[i] == '.' {
		if i = digits(i + 1); i < 0 {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i = digits(i); i < 0 {
			return -1
		}
	}
	return i
}
