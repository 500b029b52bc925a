package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/agaobs/agaobs/internal/dashboard"
	"github.com/agaobs/agaobs/internal/schema"
)

// cmdDashboard writes the Grafana dashboard for the configured
// prometheus_prefix and prometheus_naming (the seed's generate_dashboard).
func cmdDashboard(args []string, stdout, stderr io.Writer) error {
	var out, title, refresh string
	var wrapper bool
	cfg, _, err := parse("dashboard", args, stdout, stderr, func(fs *pflag.FlagSet) {
		fs.StringVar(&out, "out", "", "write the dashboard JSON here instead of stdout")
		fs.StringVar(&title, "title", "AGA Observability", "dashboard title")
		fs.StringVar(&refresh, "refresh", "30s", "auto-refresh interval (e.g. 10s, 1m; off: none)")
		fs.BoolVar(&wrapper, "api-wrapper", false, `wrap as {"dashboard": …, "overwrite": true} for Grafana's POST /api/dashboards/db`)
	})
	if err != nil {
		return err
	}
	b, err := dashboard.Render(dashboard.Options{Prefix: cfg.PrometheusPrefix, Naming: schema.Naming(cfg.PrometheusNaming),
		Title: title, Refresh: refresh, APIWrapper: wrapper})
	if err != nil {
		// The config is already valid: only --title or --refresh can be wrong.
		return fail(2, err)
	}
	if out == "" {
		_, err = stdout.Write(b)
		return err
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		return fmt.Errorf("dashboard: %w", err)
	}
	return nil
}
