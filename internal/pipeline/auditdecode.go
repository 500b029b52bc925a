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
	// Raw is copied out of the ring; Details below alias Unmarshal's copy.
	a.Raw = append(json.RawMessage(nil), obj...)
	if utf8.Valid(obj) && !NestedDeeper(obj, MaxAuditDepth) && json.Unmarshal(obj, a) == nil && isObject(obj) {
		// The common case: one Unmarshal, as before.
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
