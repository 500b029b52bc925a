package otlp

import (
	"context"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// countingExporter shares the metric exporter among the meter providers
// (one per producer): it counts what each export sends and leaves the
// exporter's shutdown to the Exporter.
type countingExporter struct {
	e *Exporter
}

func (e *Exporter) countingMetricExporter() sdkmetric.Exporter { return countingExporter{e: e} }

func (c countingExporter) Temporality(k sdkmetric.InstrumentKind) metricdata.Temporality {
	return c.e.metricExp.Temporality(k)
}

func (c countingExporter) Aggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return c.e.metricExp.Aggregation(k)
}

func (c countingExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	n := 0
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			n += points(m.Data)
		}
	}
	st := c.e.stats[SignalMetrics]
	start := time.Now()
	err := c.e.metricExp.Export(ctx, rm)
	st.exported(n, time.Since(start), err)
	if err != nil {
		st.drop(reasonExportError, n)
	}
	return err
}

func (c countingExporter) ForceFlush(ctx context.Context) error { return c.e.metricExp.ForceFlush(ctx) }

func (c countingExporter) Shutdown(context.Context) error { return nil }

// points counts the data points of one metric.
func points(d metricdata.Aggregation) int {
	switch v := d.(type) {
	case metricdata.Sum[int64]:
		return len(v.DataPoints)
	case metricdata.Sum[float64]:
		return len(v.DataPoints)
	case metricdata.Gauge[int64]:
		return len(v.DataPoints)
	case metricdata.Gauge[float64]:
		return len(v.DataPoints)
	case metricdata.Histogram[int64]:
		return len(v.DataPoints)
	case metricdata.Histogram[float64]:
		return len(v.DataPoints)
	case metricdata.ExponentialHistogram[int64]:
		return len(v.DataPoints)
	case metricdata.ExponentialHistogram[float64]:
		return len(v.DataPoints)
	case metricdata.Summary:
		return len(v.DataPoints)
	}
	return 0
}
