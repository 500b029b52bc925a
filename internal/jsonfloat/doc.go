// Package jsonfloat is the agent's one policy for floats JSON cannot
// carry. RFC 8259 has no NaN or Infinity (Python's json module writes
// them anyway, which strict parsers reject), and encoding/json refuses
// them with an error that would lose a whole document for one value.
//
// The policy: a finite float is a JSON number; NaN, +Inf and -Inf are the
// JSON strings "NaN", "+Inf" and "-Inf", the spelling Prometheus uses for
// sample values in its HTTP API and the one strconv.ParseFloat reads back.
// A string keeps the fact that the value was not finite (null would read
// as "absent") and every JSON parser accepts it. -0 stays the number -0.
//
// Use [Value] or [Float] with encoding/json, [Replace] for values of
// unknown type (maps and slices are walked), and [AppendNonFinite] or
// [Append] in hand-written encoders. docs/seed-compatibility.md §10 says
// where the policy applies and why.
package jsonfloat
