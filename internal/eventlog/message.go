package eventlog

import (
	"strconv"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/pyfmt"
)

// appendMessage appends the seed's message string
// (docs/seed-compatibility.md §5.2).
func appendMessage(b []byte, ev *pipeline.Event) []byte {
	switch ev.Kind {
	case pipeline.KindForward:
		f := &ev.Forward
		b = append(b, "layer="...)
		if l, ok := f.LayerIdx(); ok {
			b = strconv.AppendInt(b, int64(l), 10)
		} else {
			b = append(b, '?')
		}
		if f.Applied() {
			b = append(b, " applied=✓ gate="...)
		} else {
			b = append(b, " applied=✗ gate="...)
		}
		// The seed printed missing values as 0.
		gate, _ := f.GateMean()
		ent, _ := f.EntropyMean()
		lat, _ := f.LatencyUs()
		b = strconv.AppendFloat(b, gate, 'f', 3, 64)
		b = strconv.AppendFloat(append(b, " entropy="...), ent, 'f', 3, 64)
		b = strconv.AppendFloat(append(b, " latency="...), lat, 'f', 1, 64)
		return append(b, "μs"...)
	case pipeline.KindRetrieval:
		r := ev.Retrieval
		val := func(b []byte, v int32, ok bool) []byte {
			if !ok {
				return append(b, "None"...)
			}
			return strconv.AppendInt(b, int64(v), 10)
		}
		l, ok := r.LayerIdx()
		b = val(append(b, "layer="...), l, ok)
		n, ok := r.ResultsCount()
		b = val(append(b, " results="...), n, ok)
		n, ok = r.InjectedCount()
		b = val(append(b, " injected="...), n, ok)
		n, ok = r.BudgetRemaining()
		return val(append(b, " budget_left="...), n, ok)
	case pipeline.KindAudit:
		if ev.Audit.Success {
			b = append(b, "[OK] "...)
		} else {
			b = append(b, "[FAIL] "...)
		}
		b = append(b, ev.Audit.Operation...)
		return pyfmt.AppendRepr(append(b, ": "...), ev.Audit.Details)
	case pipeline.KindEvent:
		return pyfmt.AppendRepr(b, ev.Other.Data)
	}
	return b
}
