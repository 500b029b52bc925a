// Package schema owns the metric schema the agent's producers, generators
// and configuration share: the AGA-domain metric families (names in both
// namings, types, units, labels, help, histogram buckets), the forward
// latency bucket bounds and the index that finds a value's bucket among
// them (BucketIndex), the rule metrics alert rules may watch, and the
// label-value sanitizer every exported label value passes through.
//
// It is a leaf: it imports only the standard library, so the exporter
// (internal/metrics), the rule and dashboard generators, the alert engine
// and configuration validation can all read one definition without
// depending on each other. In particular it names metric types with its own
// MetricType, not client_golang's, and the exporter maps them.
package schema
