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
// A text or OpenMetrics scrape does not build dto objects for the AGA
// families: the exporter writes them straight from its state, byte for
// byte what expfmt writes for Gather's families, and keeps each family's
// bytes (and, on the first gzip scrape, their deflate segment) until an
// event changes that family. Write bumps the generation of the families
// its events touch, or of every family when a producer or layer comes or
// goes; build_info and producer_info, which read the identity and the GPU
// collector, are rendered on every scrape, as are the self-metrics. A gzip
// body is one gzip member: the cached segments end in a sync flush, so
// they concatenate with the freshly compressed ones. Protobuf, name[]
// filters and exporters whose names expfmt would quote or escape take
// client_golang's handler over Gather. render.go and scrape.go hold the
// details; the cache costs about one exposition's size per text format
// scraped (2.9 MB at 96 layers × 8 producers), bounded by the series.
//
// Producers are untrusted: every label value passes through
// schema.LabelValue (valid UTF-8, bounded length), the labels whose values
// a producer chooses (layer, operation) are capped per producer, and
// non-finite values never reach a histogram (pipeline.Decode drops them).
package metrics
