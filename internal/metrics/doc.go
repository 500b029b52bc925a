// Package metrics owns the Prometheus exposition: the AGA-domain families
// (the seed's fourteen plus producer info) folded from pipeline events into
// compact per-producer state by the Exporter sink and rendered at scrape
// time; the ring, consumer, pipeline and exporter self-metrics collectors
// (internal/selfmetrics, the one registration path of agaobs_* families);
// and the /metrics handler that merges both through client_golang's
// content negotiation (text, OpenMetrics, protobuf for native histograms).
//
// The families' names, types, labels and buckets are defined in
// internal/schema; this package renders them.
//
// Producers are untrusted: every label value passes through
// schema.LabelValue (valid UTF-8, bounded length), the labels whose values
// a producer chooses (layer, operation) are capped per producer, and
// non-finite values never reach a histogram (pipeline.Decode drops them).
package metrics
