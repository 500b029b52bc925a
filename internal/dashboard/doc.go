// Package dashboard owns the Grafana dashboard for agaobs-agent's metrics:
// its JSON model (typed structs, schemaVersion 39), the rows and panels with
// their PromQL, and the rendering that `agaobs-agent dashboard` prints and
// that is committed under dashboards/.
//
// Metric names come from the exporter's own definitions (schema.Families
// for the AGA-domain families, honouring prometheus_prefix and
// prometheus_naming), so a renamed family changes the generated dashboard
// instead of silently emptying a panel. The agent's agaobs_* names, which
// have no typed registry, are constants in names.go; a test checks every
// name and selector label against the agent's metric reference.
//
// Filtering: every query reads $datasource; series with a producer label
// are filtered by $producer (whose options follow $node) and by $layer
// where the family has a layer label. Node-wide series (GPUs, sinks,
// collectors, health, the audit store) carry no node label, so they are
// joined on the scrape target's instance with <prefix>_producer_info,
// which supplies the node; a node without live producers therefore shows
// no node-wide series.
//
// The output is deterministic: panel ids, grid positions and JSON key
// order depend only on Options.
package dashboard
