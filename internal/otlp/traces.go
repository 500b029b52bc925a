package otlp

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/agaobs/agaobs/internal/pipeline"
)

// idsKey carries the ids of the span being started to recordIDs.
type idsKey struct{}

type spanIDs struct {
	trace trace.TraceID
	span  trace.SpanID
}

// recordIDs gives a span the ids derived from its ring record (epoch,
// sequence): a record re-read after a restart gets the same ids.
type recordIDs struct{}

func (recordIDs) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	ids, _ := ctx.Value(idsKey{}).(spanIDs)
	return ids.trace, ids.span
}

func (recordIDs) NewSpanID(ctx context.Context, _ trace.TraceID) trace.SpanID {
	ids, _ := ctx.Value(idsKey{}).(spanIDs)
	return ids.span
}

// spanProcessor queues ended spans for the export goroutine; a full queue
// drops the span and counts it.
type spanProcessor struct{ e *Exporter }

func (p *spanProcessor) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

func (p *spanProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	if !p.e.spans.push(s) {
		p.e.stats[SignalTraces].drop(reasonQueueFull, 1)
	}
}

func (p *spanProcessor) Shutdown(context.Context) error   { return nil }
func (p *spanProcessor) ForceFlush(context.Context) error { return nil }

// span records a kept event as a span and returns its context (for the
// event's log record).
func (e *Exporter) span(st *producerState, ev *pipeline.Event, reason pipeline.SpanReason) trace.SpanContext {
	ids := spanIDs{trace: pipeline.TraceID(ev.Epoch, ev.Seq), span: pipeline.SpanID(ev.Epoch, ev.Seq)}
	ctx := context.WithValue(context.Background(), idsKey{}, ids)
	end := time.Unix(0, ev.TimeNs)
	start := end
	attrs := make([]attribute.KeyValue, 0, 10)
	attrs = append(attrs, attribute.String("aga.producer", clean(ev.Producer.Name)), attribute.String("aga.keep_reason", reason.String()))
	if id := ev.Producer.Identity(); id != nil && id.Model != "" {
		attrs = append(attrs, attribute.String("gen_ai.request.model", clean(id.Model)))
	}
	var name string
	status, msg := codes.Unset, ""
	switch ev.Kind {
	case pipeline.KindForward:
		name = "aga.forward"
		f := &ev.Forward
		if us, ok := f.LatencyUs(); ok && us > 0 {
			start = end.Add(-time.Duration(us * 1e3))
			attrs = append(attrs, attribute.Float64("aga.latency_us", us))
			if e.opts.CriticalUs > 0 && us >= e.opts.CriticalUs {
				status, msg = codes.Error, "forward latency at or above the critical threshold"
			}
		}
		attrs = append(attrs, attribute.Int("aga.layer", int(f.Layer())), attribute.Bool("aga.applied", f.Applied()))
		if g, ok := f.GateMean(); ok {
			attrs = append(attrs, attribute.Float64("aga.gate_mean", g))
		}
		if v, ok := f.EntropyMean(); ok {
			attrs = append(attrs, attribute.Float64("aga.entropy_mean", v))
		}
	case pipeline.KindRetrieval:
		name = "aga.retrieval"
		r := ev.Retrieval
		if l, ok := r.LayerIdx(); ok {
			attrs = append(attrs, attribute.Int("aga.layer", int(l)))
		}
		if n, ok := r.ResultsCount(); ok {
			attrs = append(attrs, attribute.Int("aga.results", int(n)))
		}
		if n, ok := r.InjectedCount(); ok {
			attrs = append(attrs, attribute.Int("aga.injected", int(n)))
		}
		if n, ok := r.BudgetRemaining(); ok {
			attrs = append(attrs, attribute.Int("aga.budget_remaining", int(n)))
		}
	case pipeline.KindAudit:
		name = "aga.audit"
		a := ev.Audit
		attrs = append(attrs, attribute.String("aga.audit.operation", clean(a.Operation)), attribute.Bool("aga.audit.success", a.Success))
		if !a.Success {
			status, msg = codes.Error, "audit operation failed"
			if a.Error != nil {
				msg = clean(*a.Error)
			}
		}
	}
	_, sp := st.tracer.Start(ctx, name, trace.WithTimestamp(start), trace.WithAttributes(attrs...),
		trace.WithSpanKind(trace.SpanKindInternal))
	if status != codes.Unset {
		sp.SetStatus(status, msg)
	}
	sc := sp.SpanContext()
	sp.End(trace.WithTimestamp(end))
	return sc
}
