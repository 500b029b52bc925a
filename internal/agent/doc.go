// Package agent wires agaobs-agent together: it owns the lifecycle of the
// state file, the pipeline dispatcher and its sinks, the ring consumer, the
// HTTP listeners and configuration reloads, and it shuts them down in a
// written order (see Run).
package agent
