// Package replay is the anomaly detector's labelled benchmark: it
// generates, deterministically from a seed and in simulated time, days of
// diurnal per-minute aggregates for producers grouped as tensor-parallel
// ranks of models, injects labelled incidents and benign events, feeds
// the alert engine (ObserveMinute, then Eval one minute later) and scores
// detection per incident kind against the seed's static rules run on the
// same aggregates. docs/anomaly.md describes the traffic model, the
// incident kinds and how to add one; `agaobs-bench anomaly` runs it.
package replay
