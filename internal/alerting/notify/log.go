package notify

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// levelCritical is where CRITICAL lands on slog's scale: above Error, as
// Python's CRITICAL (50) is above ERROR (40).
const levelCritical = slog.LevelError + 4

// parseLevel reads alert_log_level's names (Python's, case-insensitive).
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToUpper(s) {
	case "DEBUG":
		return slog.LevelDebug, nil
	case "INFO":
		return slog.LevelInfo, nil
	case "WARNING", "WARN":
		return slog.LevelWarn, nil
	case "ERROR":
		return slog.LevelError, nil
	case "CRITICAL":
		return levelCritical, nil
	}
	return 0, fmt.Errorf("%q: want DEBUG, INFO, WARNING, ERROR or CRITICAL", s)
}

// alertLevel is the level of an alert's log line: by severity while firing,
// Info once resolved (a recovery is not a problem). warn is the configured
// alert_log_level, applied to warning alerts; the default WARNING keeps them
// at Warn. Unknown severities are treated as warning so they stay visible.
func alertLevel(a Alert, warn slog.Level) slog.Level {
	if a.resolved() {
		return slog.LevelInfo
	}
	switch a.Severity {
	case "critical":
		return slog.LevelError
	case "info":
		return slog.LevelInfo
	}
	return warn
}

// logDeliver returns the log channel's delivery: one line per alert, each
// counted as a success (a slog handler reports no errors).
func logDeliver(logger *slog.Logger, warn slog.Level, counts *counters) func(context.Context, []Alert) {
	return func(ctx context.Context, batch []Alert) {
		for _, a := range batch {
			attrs := []slog.Attr{
				slog.String("alertname", a.Name),
				slog.String("status", a.Status),
				slog.String("severity", a.Severity),
				slog.String("producer", a.Producer),
				slog.String("metric", a.Metric),
				slog.Float64("value", a.Value),
				slog.Float64("threshold", a.Threshold),
				slog.String("message", a.Message),
				slog.String("fingerprint", a.Fingerprint()),
				slog.Time("starts_at", a.StartsAt),
			}
			if a.resolved() {
				attrs = append(attrs, slog.Time("ends_at", a.EndsAt))
			}
			attrs = append(attrs, slog.Any("labels", a.labelSet()))
			logger.LogAttrs(ctx, alertLevel(a, warn), "alert", attrs...)
			counts.success()
		}
	}
}
