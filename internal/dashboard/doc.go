// Package dashboard owns the Grafana dashboards for agaobs-agent's metrics:
// their JSON model (typed structs, schemaVersion 39), the rows and panels
// with their PromQL, and the rendering that `agaobs-agent dashboard` prints
// and that is committed under dashboards/. There are two, each linking to
// the other: the node dashboard (one node's producers, GPUs, eBPF probes
// and agent; uid agaobs-<prefix>[-conventional]) and, with Options.Fleet,
// the fleet dashboard (a node × producer table, the worst producers, SLOs
// by model and the agents' health, with links into the node dashboard;
// uid agaobs-<prefix>[-conventional]-fleet).
//
// Metric names come from the exporter's own definitions (schema.Families
// for the AGA-domain families, honouring prometheus_prefix and
// prometheus_naming), so a renamed family changes the generated dashboards
// instead of silently emptying a panel. The agent's agaobs_* names, which
// have no typed registry, are constants in names.go; a test checks every
// name and selector label against the agent's metric reference. Both read
// raw series only: they work without the Prometheus recording rules.
//
// Filtering: every query reads $datasource, and every series selector of
// both dashboards starts with node=~"$node": the agent adds node=<node_name>
// to every series it exposes (AGA families, agaobs_* self-metrics, GPU and
// eBPF series alike), so a node's GPUs and agent show whether or not it
// has producers. $node lists the node label of agaobs_build_info, which
// every agent exports. With Options.ByInstance (for agents with
// prometheus_node_label: false) the scrape target's instance label takes
// node's place everywhere, and $node lists instances. On the node
// dashboard, series with a producer label are also filtered by $producer
// (whose options follow $node) and by $layer where the family has a layer
// label; per-producer aggregations keep the node label, so the same
// producer name on two nodes stays two series.
//
// The output is deterministic: panel ids, grid positions and JSON key
// order depend only on Options.
package dashboard
