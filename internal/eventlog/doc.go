// Package eventlog owns the structured event log (the seed's LogExporter,
// out of process): one line per producer event, JSON or text, to stderr
// and/or a size-rotated file (lumberjack). It is a pipeline sink on its own
// bounded queue, so a slow disk never slows ring consumption; events below
// log_level are never formatted and forward events can be sampled.
package eventlog
