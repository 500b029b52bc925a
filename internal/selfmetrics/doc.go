// Package selfmetrics is the one way the agent's own metrics (agaobs_*)
// reach the Prometheus registry. Every source is a Collector that
// describes, up front, every family it can emit and renders them on each
// scrape (node_exporter's Update pattern); a Set runs them all, adds
// agaobs_collector_success and agaobs_collector_duration_seconds per
// source, and sends every descriptor to the registry, which can therefore
// check them (a checked collector). The descriptors also generate the
// README's metric reference, so a family needs no data to be documented.
package selfmetrics
