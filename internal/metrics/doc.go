// Package metrics owns the Prometheus exposition: the AGA-domain families
// (the seed's fourteen plus producer info) folded from pipeline events into
// compact per-producer state by the Exporter sink and rendered at scrape
// time; the agent's self-metrics, collected node_exporter-style by small
// collectors behind agaobs_collector_success; and the /metrics handler that
// merges both through client_golang's content negotiation (text,
// OpenMetrics, protobuf for native histograms).
//
// Producers are untrusted: every label value passes through LabelValue
// (valid UTF-8, bounded length), the labels whose values a producer
// chooses (layer, operation) are capped per producer, and non-finite values
// never reach a histogram (pipeline.Decode drops them).
package metrics
