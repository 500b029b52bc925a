// Package anomaly is the alert engine's threshold-free detector: an online
// robust baseline per producer, signal and layer on one-minute aggregates
// (an EWMA-updated center and mean absolute deviation, Huber-clipped, with
// a daily seasonal profile once a day of data exists), a robust z-score per
// signal, and peer groups that compare the tensor-parallel ranks of one
// serving process with each other every minute (stragglers).
//
// It reads no clock: the engine (or the replay benchmark in
// anomaly/replay) hands it each minute's aggregates with the minute's
// time. docs/anomaly.md describes the model, the scores and the
// sensitivities.
package anomaly
