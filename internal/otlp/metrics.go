package otlp

import (
	"context"
	"strconv"
	"strings"

	prombridge "go.opentelemetry.io/contrib/bridges/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/schema"
)

// Label caps, as the Prometheus exporter's: a producer controls these
// values, and every distinct one is a series.
const (
	maxLayers     = 256
	maxOperations = 64
	otherValue    = "other"
)

// instruments are one producer's AGA metrics; Write is their only writer.
type instruments struct {
	forward, retrieval, injected, audit        metric.Int64Counter
	latency, gate, entropy, score              metric.Float64Histogram
	knowledge, utilization, pinned, slotChange metric.Float64Gauge
	fwdAttrs                                   map[fwdKey]metric.MeasurementOption
	layerAttrs                                 map[int32]metric.MeasurementOption
	opAttrs                                    map[opKey]metric.MeasurementOption
	none                                       metric.MeasurementOption
	divisor                                    float64
}

type fwdKey struct {
	layer   int32
	applied bool
}

type opKey struct {
	op      string
	success bool
}

// metricName is a family's OTLP name: its conventional Prometheus name
// without the suffixes a Prometheus exporter adds back from the type and
// unit (_total, _seconds).
func metricName(prefix string, f schema.Family) (name, unit string) {
	name = prefix + "_" + f.Conventional
	switch {
	case strings.HasSuffix(name, "_total"):
		name = strings.TrimSuffix(name, "_total")
	case strings.HasSuffix(name, "_seconds"):
		name, unit = strings.TrimSuffix(name, "_seconds"), "s"
	}
	return name, unit
}

// newProducerMeterProvider builds a producer's meter provider, exported
// every otlp_metrics_interval, and its instruments.
func (e *Exporter) newProducerMeterProvider(res *resource.Resource) (*sdkmetric.MeterProvider, *instruments) {
	opts := []sdkmetric.Option{sdkmetric.WithResource(res),
		sdkmetric.WithReader(sdkmetric.NewPeriodicReader(e.countingMetricExporter(), sdkmetric.WithInterval(e.opts.MetricsInterval)))}
	if e.opts.Exponential {
		opts = append(opts, sdkmetric.WithView(sdkmetric.NewView(sdkmetric.Instrument{Kind: sdkmetric.InstrumentKindHistogram},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationBase2ExponentialHistogram{MaxSize: 160, MaxScale: 20}})))
	}
	mp := sdkmetric.NewMeterProvider(opts...)
	m := mp.Meter(scope)
	in := &instruments{fwdAttrs: map[fwdKey]metric.MeasurementOption{}, layerAttrs: map[int32]metric.MeasurementOption{},
		opAttrs: map[opKey]metric.MeasurementOption{}, none: metric.WithAttributeSet(attribute.NewSet())}
	for _, f := range schema.Families() {
		name, unit := metricName(e.opts.Prefix, f)
		switch f.Key {
		case schema.FamForward:
			in.forward, _ = m.Int64Counter(name, metric.WithDescription(f.Help))
		case schema.FamRetrieval:
			in.retrieval, _ = m.Int64Counter(name, metric.WithDescription(f.Help))
		case schema.FamRetrievalInjected:
			in.injected, _ = m.Int64Counter(name, metric.WithDescription(f.Help))
		case schema.FamAuditOperations:
			in.audit, _ = m.Int64Counter(name, metric.WithDescription(f.Help))
		case schema.FamForwardLatency:
			in.divisor = f.Divisor
			bounds := make([]float64, len(f.Buckets))
			for i, b := range f.Buckets {
				bounds[i] = b / f.Divisor
			}
			in.latency, _ = m.Float64Histogram(name, metric.WithDescription(f.Help), metric.WithUnit(unit),
				metric.WithExplicitBucketBoundaries(bounds...))
		case schema.FamGateValue:
			in.gate, _ = m.Float64Histogram(name, metric.WithDescription(f.Help), metric.WithExplicitBucketBoundaries(f.Buckets...))
		case schema.FamEntropyValue:
			in.entropy, _ = m.Float64Histogram(name, metric.WithDescription(f.Help), metric.WithExplicitBucketBoundaries(f.Buckets...))
		case schema.FamRetrievalScore:
			in.score, _ = m.Float64Histogram(name, metric.WithDescription(f.Help), metric.WithExplicitBucketBoundaries(f.Buckets...))
		case schema.FamKnowledgeCount:
			in.knowledge, _ = m.Float64Gauge(name, metric.WithDescription(f.Help))
		case schema.FamKnowledgeUtil:
			in.utilization, _ = m.Float64Gauge(name, metric.WithDescription(f.Help))
		case schema.FamKnowledgePinned:
			in.pinned, _ = m.Float64Gauge(name, metric.WithDescription(f.Help))
		case schema.FamSlotChangeRate:
			in.slotChange, _ = m.Float64Gauge(name, metric.WithDescription(f.Help))
		}
	}
	return mp, in
}

// cached returns the measurement option of key k, built once while m holds
// fewer than limit keys; beyond, the value is "other" (built per call, not
// kept: a producer cannot grow m).
func cached[K comparable](m map[K]metric.MeasurementOption, k K, limit int, build func(other bool) attribute.Set) metric.MeasurementOption {
	if o, ok := m[k]; ok {
		return o
	}
	if len(m) >= limit {
		return metric.WithAttributeSet(build(true))
	}
	o := metric.WithAttributeSet(build(false))
	m[k] = o
	return o
}

func layerValue(l int32, other bool) string {
	if other {
		return otherValue
	}
	return strconv.Itoa(int(l))
}

func (in *instruments) layer(l int32) metric.MeasurementOption {
	return cached(in.layerAttrs, l, maxLayers, func(other bool) attribute.Set {
		return attribute.NewSet(attribute.String("layer", layerValue(l, other)))
	})
}

func (in *instruments) forwardAttrs(l int32, applied bool) metric.MeasurementOption {
	return cached(in.fwdAttrs, fwdKey{l, applied}, 2*maxLayers, func(other bool) attribute.Set {
		return attribute.NewSet(attribute.String("layer", layerValue(l, other)), attribute.Bool("applied", applied))
	})
}

func (in *instruments) operationAttrs(op string, success bool) metric.MeasurementOption {
	return cached(in.opAttrs, opKey{op, success}, 2*maxOperations, func(other bool) attribute.Set {
		v := schema.LabelValue(op)
		if other {
			v = otherValue
		}
		return attribute.NewSet(attribute.String("operation", v), attribute.Bool("success", success))
	})
}

// record folds an event into the instruments, with the observation rules
// the Prometheus exporter applies (pipeline's accessors).
func (in *instruments) record(ctx context.Context, ev *pipeline.Event) {
	switch ev.Kind {
	case pipeline.KindForward:
		f := &ev.Forward
		in.forward.Add(ctx, 1, in.forwardAttrs(f.Layer(), f.Applied()))
		la := in.layer(f.Layer())
		if v, ok := f.Latency(); ok {
			in.latency.Record(ctx, v/in.divisor, la)
		}
		if v, ok := f.Gate(); ok {
			in.gate.Record(ctx, v, la)
		}
		if v, ok := f.Entropy(); ok {
			in.entropy.Record(ctx, v, la)
		}
	case pipeline.KindRetrieval:
		r := ev.Retrieval
		la := in.layer(r.Layer())
		in.retrieval.Add(ctx, 1, la)
		if n := r.Injected(); n > 0 {
			in.injected.Add(ctx, n, la)
		}
		for _, s := range r.Scores {
			in.score.Record(ctx, s, in.none)
		}
	case pipeline.KindAudit:
		in.audit.Add(ctx, 1, in.operationAttrs(ev.Audit.Operation, ev.Audit.Success))
	case pipeline.KindStatus:
		s := ev.Status
		if s == nil {
			return
		}
		if kv := s.KVStore; kv != nil {
			set := func(g metric.Float64Gauge, v *float64) {
				if v != nil && pipeline.Finite(*v) {
					g.Record(ctx, *v, in.none)
				}
			}
			set(in.knowledge, kv.Count)
			set(in.utilization, kv.Utilization)
			set(in.pinned, kv.Pinned)
		}
		if v := s.SlotChangeRate; v != nil && pipeline.Finite(*v) {
			in.slotChange.Record(ctx, *v, in.none)
		}
	}
}

// newAgentMeterProvider exports the agent's own families (read from the
// Prometheus registry through the OpenTelemetry bridge) under the agent's
// resource.
func (e *Exporter) newAgentMeterProvider() *sdkmetric.MeterProvider {
	g := agentFamilies{g: e.opts.Gatherer, prefix: e.opts.Prefix + "_"}
	reader := sdkmetric.NewPeriodicReader(e.countingMetricExporter(), sdkmetric.WithInterval(e.opts.MetricsInterval),
		sdkmetric.WithProducer(prombridge.NewMetricProducer(prombridge.WithGatherer(g))))
	return sdkmetric.NewMeterProvider(sdkmetric.WithResource(agentResource(e.opts.Node, e.opts.Version)),
		sdkmetric.WithReader(reader))
}

// agentFamilies gathers the agent's families: agaobs_* and the alert and
// SLO families; the AGA families go per producer, with their resources.
type agentFamilies struct {
	g      prometheus.Gatherer
	prefix string
}

func (a agentFamilies) Gather() ([]*dto.MetricFamily, error) {
	fams, err := a.g.Gather()
	out := fams[:0]
	for _, f := range fams {
		n := f.GetName()
		if strings.HasPrefix(n, "agaobs_") || strings.HasPrefix(n, a.prefix+"alerts") || strings.HasPrefix(n, a.prefix+"slo_") {
			out = append(out, f)
		}
	}
	return out, err
}
