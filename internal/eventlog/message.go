package eventlog

import (
	"strconv"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/pyfmt"
	"github.com/agaobs/agaobs/internal/shm"
)

// appendMessage appends the seed's message string (python-reference.md
// §2.6).
func appendMessage(b []byte, ev *pipeline.Event) []byte {
	switch ev.Kind {
	case pipeline.KindForward:
		f := &ev.Forward
		b = append(b, "layer="...)
		if f.Has(shm.FwdHasLayer) {
			b = strconv.AppendInt(b, int64(f.Layer), 10)
		} else {
			b = append(b, '?')
		}
		if f.Applied() {
			b = append(b, " applied=✓ gate="...)
		} else {
			b = append(b, " applied=✗ gate="...)
		}
		b = strconv.AppendFloat(b, f.GateMean, 'f', 3, 64)
		b = strconv.AppendFloat(append(b, " entropy="...), f.EntropyMean, 'f', 3, 64)
		b = strconv.AppendFloat(append(b, " latency="...), f.LatencyUs, 'f', 1, 64)
		return append(b, "μs"...)
	case pipeline.KindRetrieval:
		r := ev.Retrieval
		val := func(b []byte, has uint32, v int32) []byte {
			if r.Fields&has == 0 {
				return append(b, "None"...)
			}
			return strconv.AppendInt(b, int64(v), 10)
		}
		b = val(append(b, "layer="...), shm.RetHasLayer, r.Layer)
		b = val(append(b, " results="...), shm.RetHasResults, r.ResultsCount)
		b = val(append(b, " injected="...), shm.RetHasInjected, r.InjectedCount)
		return val(append(b, " budget_left="...), shm.RetHasBudget, r.BudgetRemaining)
	case pipeline.KindAudit:
		if ev.Audit.Success {
			b = append(b, "[OK] "...)
		} else {
			b = append(b, "[FAIL] "...)
		}
		b = append(b, ev.Audit.Operation...)
		return append(append(b, ": "...), pyfmt.Repr(ev.Audit.Details)...)
	case pipeline.KindEvent:
		return append(b, pyfmt.Repr(ev.Other.Data)...)
	}
	return b
}
