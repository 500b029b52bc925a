package otlp

import (
	"context"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/trace"

	"github.com/agaobs/agaobs/internal/pipeline"
)

// captureKey marks a context whose log records are audit records: they go
// to the *[]sdklog.Record in it, not to the event-log queue.
type captureKey struct{}

// logProcessor routes a producer's log records: event-log records to the
// bounded queue (a full queue drops and counts), audit records to the
// capture slice of the audit tail, which exports them itself.
type logProcessor struct{ e *Exporter }

func (p *logProcessor) OnEmit(ctx context.Context, r *sdklog.Record) error {
	if c, ok := ctx.Value(captureKey{}).(*[]sdklog.Record); ok {
		*c = append(*c, r.Clone())
		return nil
	}
	if !p.e.records.push(r.Clone()) {
		p.e.stats[SignalLogs].drop(reasonQueueFull, 1)
	}
	return nil
}

func (p *logProcessor) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }
func (p *logProcessor) Shutdown(context.Context) error                         { return nil }
func (p *logProcessor) ForceFlush(context.Context) error                       { return nil }

// severity maps the seed's levels onto OpenTelemetry's severity numbers.
func severity(l pipeline.Level) otellog.Severity {
	switch {
	case l >= pipeline.LevelCritical:
		return otellog.SeverityFatal
	case l >= pipeline.LevelError:
		return otellog.SeverityError
	case l >= pipeline.LevelWarning:
		return otellog.SeverityWarn
	case l >= pipeline.LevelInfo:
		return otellog.SeverityInfo
	}
	return otellog.SeverityDebug
}

// emitEventLog sends an event-log record: what the event log writes,
// structured. sc links it to the event's span when it has one.
func (e *Exporter) emitEventLog(st *producerState, ev *pipeline.Event, sc trace.SpanContext) {
	var r otellog.Record
	lvl := ev.SeedLevel()
	r.SetTimestamp(time.Unix(0, ev.TimeNs))
	r.SetObservedTimestamp(time.Unix(0, ev.RecvNs))
	r.SetSeverity(severity(lvl))
	r.SetSeverityText(lvl.String())
	var body []attribute.KeyValue
	switch ev.Kind {
	case pipeline.KindForward:
		r.SetEventName("aga.forward")
		f := &ev.Forward
		if l, ok := f.LayerIdx(); ok {
			body = append(body, attribute.Int("layer_idx", int(l)))
		}
		body = append(body, attribute.Bool("aga_applied", f.Applied()))
		if v, ok := f.GateMean(); ok {
			body = append(body, attribute.Float64("gate_mean", v))
		}
		if v, ok := f.EntropyMean(); ok {
			body = append(body, attribute.Float64("entropy_mean", v))
		}
		if v, ok := f.LatencyUs(); ok {
			body = append(body, attribute.Float64("latency_us", v))
		}
	case pipeline.KindRetrieval:
		r.SetEventName("aga.retrieval")
		rt := ev.Retrieval
		for _, c := range []struct {
			k string
			f func() (int32, bool)
		}{{"layer_idx", rt.LayerIdx}, {"results_count", rt.ResultsCount}, {"injected_count", rt.InjectedCount},
			{"budget_remaining", rt.BudgetRemaining}} {
			if v, ok := c.f(); ok {
				body = append(body, attribute.Int(c.k, int(v)))
			}
		}
	case pipeline.KindAudit:
		r.SetEventName("aga.audit")
		a := ev.Audit
		body = append(body, attribute.String("operation", clean(a.Operation)), attribute.Bool("success", a.Success),
			attribute.String("details", clean(string(validJSON(a.Details)))))
		if a.Error != nil {
			body = append(body, attribute.String("error", clean(*a.Error)))
		}
	case pipeline.KindEvent:
		r.SetEventName("aga." + clean(ev.Other.Name))
		body = append(body, attribute.String("data", clean(string(validJSON(ev.Other.Data)))))
	default: // status snapshots are not event-log records

		return
	}
	r.SetBody(attribute.MapValue(body...))
	r.AddAttributes(attribute.String("aga.producer", clean(ev.Producer.Name)), attribute.String("log.source", "event_log"))
	ctx := context.Background()
	if sc.IsValid() {
		ctx = trace.ContextWithSpanContext(ctx, sc)
	}
	st.logger.Emit(ctx, r)
}

// maxValueBytes bounds a string a producer wrote, as OTLP carries it.
const maxValueBytes = 16 << 10

// clean makes a producer's string safe for OTLP: protobuf refuses a string
// with invalid UTF-8, and one such value would fail the whole batch (every
// producer's records), so invalid bytes become U+FFFD; and it is cut to
// maxValueBytes at a rune boundary.
func clean(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) > maxValueBytes {
		cut := maxValueBytes
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

// validJSON returns raw when it is valid JSON, else a JSON string of it:
// a producer is untrusted, and a log body must not carry broken JSON.
func validJSON(raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return []byte("null")
	}
	if json.Valid(raw) {
		return raw
	}
	b, _ := json.Marshal(string(raw))
	return b
}
