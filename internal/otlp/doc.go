// Package otlp is the OpenTelemetry sink: forwards, retrievals and audit
// operations as spans, event-log and audit records as log records, and the
// AGA families and the agent's own as metrics, sent over OTLP (gRPC or
// HTTP/protobuf) with the OpenTelemetry Go SDK's exporters.
//
// Every producer has its own resource (service.name, service.instance.id,
// the Kubernetes pod, process.pid, gen_ai.request.model), so each has its
// own tracer and logger providers. Metrics are read from the Prometheus
// exporter's aggregation through the OpenTelemetry Prometheus bridge and
// split by producer (no second aggregation per event); the agent's own go
// under service.name=agaobs-agent. Spans and log records pass through bounded
// queues, one per signal, drained by one export goroutine each: when the
// collector is down or slow they are dropped and counted, and neither the
// ring consumer nor another sink waits. Audit records are different: they
// are read from the audit store after a cursor kept in the state file and
// the cursor advances only when the collector acknowledged them, so an
// outage delays them and a restart resends at most what was in flight.
package otlp
