package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/agaobs/agaobs/internal/config"

	"github.com/agaobs/agaobs/internal/dashboard"
	"github.com/agaobs/agaobs/internal/schema"
)

// cmdDashboard writes a Grafana dashboard for the configured
// prometheus_prefix, prometheus_naming and prometheus_node_label (the
// seed's generate_dashboard): the node dashboard, or with --fleet the fleet
// dashboard.
func (c *cli) dashboardCommand() *cobra.Command {
	var out, title, refresh string
	var fleet, wrapper bool
	return c.command(leaf{use: "dashboard", short: "Print a Grafana dashboard: the node's, or with --fleet the fleet's",
		long: `Print a Grafana dashboard (JSON) for the configured prometheus_prefix,
prometheus_naming and prometheus_node_label: the node dashboard, or with --fleet the fleet
dashboard (every node and producer, worst producers, SLOs by model, the agents).`,
		example: "  agaobs-agent dashboard --fleet --out aga-fleet.json",
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&fleet, "fleet", false, "the fleet dashboard (every node and producer, worst producers, SLOs by model, agents) instead of the node dashboard")
			fs.StringVar(&out, "out", "", "write the dashboard JSON here instead of stdout")
			fs.StringVar(&title, "title", "", `dashboard title (default "AGA Observability", with --fleet "AGA Fleet")`)
			fs.StringVar(&refresh, "refresh", "30s", "auto-refresh interval (e.g. 10s, 1m; off: none)")
			fs.BoolVar(&wrapper, "api-wrapper", false, `wrap as {"dashboard": …, "overwrite": true} for Grafana's POST /api/dashboards/db`)
		},
		run: func(_ context.Context, cfg config.Config) error {
			stdout := c.stdout
			b, err := dashboard.Render(dashboard.Options{Prefix: cfg.PrometheusPrefix, Naming: schema.Naming(cfg.PrometheusNaming), Fleet: fleet,
				// Without the node label, nodes are told apart by instance.
				ByInstance: !cfg.PrometheusNodeLabel,
				Title:      title, Refresh: refresh, APIWrapper: wrapper})
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
		}})
}
