package otlp

import (
	"context"
	"encoding/hex"
	"strings"
	"time"

	prombridge "go.opentelemetry.io/contrib/bridges/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Metrics are not aggregated a second time: the Prometheus exporter
// already folds every event into compact per-producer state, so each
// export reads it (and the agent's own families) through the OpenTelemetry
// Prometheus bridge, splits the AGA series by their producer label into one
// ResourceMetrics per producer (its resource), and sends them. The sink's
// per-event cost is the span decision alone.

// Attributes the split removes: the resource says them.
const (
	producerAttr = "producer"
	nodeAttr     = "node"
)

// exportMetrics sends one round: every producer's AGA families under its
// resource, the agent's families under the agent's.
func (e *Exporter) exportMetrics(ctx context.Context) {
	now := time.Now()
	var rms []*metricdata.ResourceMetrics
	if e.opts.AGA != nil {
		byProducer := map[string][]metricdata.Metrics{}
		for _, m := range produce(ctx, e.opts.AGA) {
			for name, part := range splitByProducer(m) {
				byProducer[name] = append(byProducer[name], part)
			}
		}
		for name, ms := range byProducer {
			rms = append(rms, &metricdata.ResourceMetrics{Resource: e.resourceOf(name),
				ScopeMetrics: []metricdata.ScopeMetrics{{Scope: instrumentation.Scope{Name: scope}, Metrics: ms}}})
		}
	}
	if e.opts.Gatherer != nil {
		g := agentFamilies{g: e.opts.Gatherer, prefix: e.opts.Prefix + "_"}
		if ms := produce(ctx, g); len(ms) > 0 {
			for i := range ms {
				ms[i] = dropAttrs(ms[i], nodeAttr)
			}
			rms = append(rms, &metricdata.ResourceMetrics{Resource: agentResource(e.opts.Node, e.opts.Version),
				ScopeMetrics: []metricdata.ScopeMetrics{{Scope: instrumentation.Scope{Name: scope}, Metrics: ms}}})
		}
	}
	st := e.stats[SignalMetrics]
	for _, rm := range rms {
		if e.delta {
			e.deltas.apply(rm, now)
		}
		n := 0
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				n += points(m.Data)
			}
		}
		if n == 0 {
			continue
		}
		start := time.Now()
		xctx, cancel := context.WithTimeout(ctx, e.exportTimeout())
		err := e.metricExp.Export(xctx, rm)
		cancel()
		st.exported(n, time.Since(start), err)
		if err != nil {
			st.drop(reasonExportError, n)
			e.logFailure(SignalMetrics, n, err)
		}
	}
	if e.delta {
		e.deltas.prune(now)
	}
}

// produce reads a gatherer through the bridge.
func produce(ctx context.Context, g prometheus.Gatherer) []metricdata.Metrics {
	sms, _ := prombridge.NewMetricProducer(prombridge.WithGatherer(g)).Produce(ctx)
	var out []metricdata.Metrics
	for _, sm := range sms {
		for _, m := range sm.Metrics {
			out = append(out, fixExemplars(m))
		}
	}
	return out
}

// fixExemplars turns the exemplars' trace and span ids back into bytes. The
// bridge (v0.72.0) copies the trace_id and span_id label values, hex text,
// as the ids' bytes: a 32-byte trace id, which the collector refuses, and
// with it the whole export. An id that is not hex of the right length is
// dropped.
func fixExemplars(m metricdata.Metrics) metricdata.Metrics {
	fix := func(ex []metricdata.Exemplar[float64]) {
		for i := range ex {
			ex[i].TraceID = hexID(ex[i].TraceID, 16)
			ex[i].SpanID = hexID(ex[i].SpanID, 8)
		}
	}
	switch d := m.Data.(type) {
	case metricdata.Sum[float64]:
		for i := range d.DataPoints {
			fix(d.DataPoints[i].Exemplars)
		}
	case metricdata.Histogram[float64]:
		for i := range d.DataPoints {
			fix(d.DataPoints[i].Exemplars)
		}
	case metricdata.ExponentialHistogram[float64]:
		for i := range d.DataPoints {
			fix(d.DataPoints[i].Exemplars)
		}
	}
	return m
}

// hexID decodes an id written as hex text of n bytes; nil otherwise.
func hexID(text []byte, n int) []byte {
	if len(text) == n {
		return text // already bytes
	}
	b := make([]byte, n)
	if len(text) != 2*n {
		return nil
	}
	if _, err := hex.Decode(b, text); err != nil {
		return nil
	}
	return b
}

// resourceOf is a producer's resource: the live producer's, else one for
// the name alone.
func (e *Exporter) resourceOf(name string) *resource.Resource {
	e.mu.Lock()
	p := e.known[name]
	e.mu.Unlock()
	if p != nil {
		return producerResource(p, e.opts.Node)
	}
	return orphanResource(name, e.opts.Node)
}

// splitByProducer splits a metric's points by their producer attribute
// (dropped, with node: the resource carries both).
func splitByProducer(m metricdata.Metrics) map[string]metricdata.Metrics {
	out := map[string]metricdata.Metrics{}
	part := func(attrs attribute.Set) (string, attribute.Set) {
		v, _ := attrs.Value(producerAttr)
		kept, _ := attrs.Filter(func(kv attribute.KeyValue) bool { return kv.Key != producerAttr && kv.Key != nodeAttr })
		return v.AsString(), kept
	}
	switch d := m.Data.(type) {
	case metricdata.Sum[float64]:
		for name, pts := range group(d.DataPoints, func(p *metricdata.DataPoint[float64]) *attribute.Set { return &p.Attributes }, part) {
			s := d
			s.DataPoints = pts
			out[name] = metricdata.Metrics{Name: m.Name, Description: m.Description, Unit: m.Unit, Data: s}
		}
	case metricdata.Gauge[float64]:
		for name, pts := range group(d.DataPoints, func(p *metricdata.DataPoint[float64]) *attribute.Set { return &p.Attributes }, part) {
			out[name] = metricdata.Metrics{Name: m.Name, Description: m.Description, Unit: m.Unit, Data: metricdata.Gauge[float64]{DataPoints: pts}}
		}
	case metricdata.Histogram[float64]:
		for name, pts := range group(d.DataPoints, func(p *metricdata.HistogramDataPoint[float64]) *attribute.Set { return &p.Attributes }, part) {
			h := d
			h.DataPoints = pts
			out[name] = metricdata.Metrics{Name: m.Name, Description: m.Description, Unit: m.Unit, Data: h}
		}
	case metricdata.ExponentialHistogram[float64]:
		for name, pts := range group(d.DataPoints, func(p *metricdata.ExponentialHistogramDataPoint[float64]) *attribute.Set { return &p.Attributes }, part) {
			h := d
			h.DataPoints = pts
			out[name] = metricdata.Metrics{Name: m.Name, Description: m.Description, Unit: m.Unit, Data: h}
		}
	}
	return out
}

// group sorts points by producer, rewriting their attributes.
func group[P any](points []P, attrs func(*P) *attribute.Set, part func(attribute.Set) (string, attribute.Set)) map[string][]P {
	out := map[string][]P{}
	for i := range points {
		p := points[i]
		a := attrs(&p)
		name, kept := part(*a)
		if name == "" {
			continue // a family without producers (build info of none)
		}
		*a = kept
		out[name] = append(out[name], p)
	}
	return out
}

// dropAttrs removes keys from every point's attributes.
func dropAttrs(m metricdata.Metrics, keys ...string) metricdata.Metrics {
	drop := func(a *attribute.Set) {
		*a, _ = a.Filter(func(kv attribute.KeyValue) bool {
			for _, k := range keys {
				if string(kv.Key) == k {
					return false
				}
			}
			return true
		})
	}
	switch d := m.Data.(type) {
	case metricdata.Sum[float64]:
		for i := range d.DataPoints {
			drop(&d.DataPoints[i].Attributes)
		}
	case metricdata.Gauge[float64]:
		for i := range d.DataPoints {
			drop(&d.DataPoints[i].Attributes)
		}
	case metricdata.Histogram[float64]:
		for i := range d.DataPoints {
			drop(&d.DataPoints[i].Attributes)
		}
	case metricdata.ExponentialHistogram[float64]:
		for i := range d.DataPoints {
			drop(&d.DataPoints[i].Attributes)
		}
	case metricdata.Summary:
		for i := range d.DataPoints {
			drop(&d.DataPoints[i].Attributes)
		}
	}
	return m
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

// points counts the data points of one metric.
func points(d metricdata.Aggregation) int {
	switch v := d.(type) {
	case metricdata.Sum[float64]:
		return len(v.DataPoints)
	case metricdata.Gauge[float64]:
		return len(v.DataPoints)
	case metricdata.Histogram[float64]:
		return len(v.DataPoints)
	case metricdata.ExponentialHistogram[float64]:
		return len(v.DataPoints)
	case metricdata.Summary:
		return len(v.DataPoints)
	}
	return 0
}
