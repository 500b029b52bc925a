// Command agaobs-agent is the agaobs node agent: it consumes the shared-memory
// rings of AGA inference processes and feeds metrics, logs, alerts, audit and
// health. See README.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/agaobs/agaobs/internal/agent"
	"github.com/agaobs/agaobs/internal/alerting/promrules"
	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/demo"
	"github.com/agaobs/agaobs/internal/rings"
	"github.com/agaobs/agaobs/internal/schema"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// runCommand is run (the agent) or, withDemo, demo (the agent plus
// synthetic producers).
func (c *cli) runCommand(withDemo bool) *cobra.Command {
	dopts := demo.Options{Producers: 2, KillFirst: 40 * time.Second, KillEvery: 3 * time.Minute}
	speed := 1.0
	l := leaf{use: "run", short: "Consume the rings and serve (the default command)",
		long: `Consume the rings of every AGA producer in ring_dir and serve /metrics, the event log,
alerts, the audit trail, /health and the admin API until SIGINT or SIGTERM. SIGHUP reloads
the configuration file.`,
		example: "  agaobs-agent run --config /etc/agaobs/agaobs.yaml\n  AGAOBS_RING_DIR=/dev/shm/agaobs agaobs-agent"}
	if withDemo {
		l = leaf{use: "demo", short: "The agent plus synthetic AGA producers (what make run starts)",
			long: `Run the agent with synthetic AGA producers (real child processes writing real rings):
metrics, alerts, audit and health at once, a live table on stdout. One rank is killed
after --kill-first and again every --kill-every, so producer lifecycle and alerts show.`,
			example: "  agaobs-agent demo --ring-dir /dev/shm/agaobs-demo --speed 4",
			flags: func(fs *pflag.FlagSet) {
				fs.IntVar(&dopts.Producers, "producers", dopts.Producers, "number of synthetic producers (tensor-parallel ranks)")
				fs.DurationVar(&dopts.KillFirst, "kill-first", dopts.KillFirst, "SIGKILL the last rank after this long")
				fs.DurationVar(&dopts.KillEvery, "kill-every", dopts.KillEvery, "then SIGKILL it again at this interval")
				fs.Float64Var(&speed, "speed", speed, "compress the producers' scripted timeline by this factor")
			}}
	}
	l.run = func(ctx context.Context, cfg config.Config) error {
		return c.serve(ctx, cfg, withDemo, dopts, speed)
	}
	return c.command(l)
}

func (c *cli) serve(ctx context.Context, cfg config.Config, withDemo bool, dopts demo.Options, speed float64) error {
	stdout, loader := c.stdout, c.loader
	if withDemo && len(cfg.SLOs) == 0 {
		// The demo shows one SLO: 99 % of forwards within 1 ms.
		cfg.SLOs = []config.SLO{{Name: "demo_latency", Objective: 0.99, Period: config.Duration(30 * 24 * time.Hour),
			SLI: config.SLI{Type: "latency", ThresholdUs: 1000}}}
	}
	log, level := agent.NewLogger(cfg)
	a, err := agent.New(cfg, agent.Options{Logger: log, Level: level, Loader: loader, Env: c.env, Version: agentVersion()})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-hup:
				_ = a.Reload() // logs its own outcome; a bad file keeps the old config
			}
		}
	})
	g.Go(func() error { return a.Run(gctx) })
	log.Info("agaobs-agent started", "version", agentVersion(), "ring_dir", cfg.RingDir, "metrics", a.MetricsAddr(), "admin", a.AdminAddr())
	if withDemo {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "agaobs demo: agent consuming %s; synthetic producers starting.\n", cfg.RingDir)
		if addr := localAddr(a.AdminAddr()); addr != "" {
			fmt.Fprintf(stdout, "  live:    open http://%s/ui/   (the per-second page of this node)\n", addr)
		}
		if addr := localAddr(a.MetricsAddr()); addr != "" {
			fmt.Fprintf(stdout, "  metrics: curl -s http://%s/metrics | grep ^%s_\n", addr, cfg.PrometheusPrefix)
		}
		if addr := a.AdminAddr(); addr != "" {
			fmt.Fprintf(stdout, "  rings:   agaobs-agent rings --ring-dir %s   (or curl http://%s/api/v1/rings)\n", cfg.RingDir, addr)
			fmt.Fprintf(stdout, "  audit:   agaobs-agent audit query --audit-storage-path %s   (or curl http://%s/api/v1/audit)\n", cfg.AuditStoragePath, addr)
		}
		if addr := localAddr(a.HealthAddr()); addr != "" {
			fmt.Fprintf(stdout, "  health:  agaobs-agent health --url http://%s   (or curl http://%s%s)\n", addr, addr, cfg.HealthPath)
		}
		if cfg.LogEnabled && cfg.LogFile != "" {
			fmt.Fprintf(stdout, "  events:  tail -f %s   (the event log; this terminal keeps the table)\n", cfg.LogFile)
		}
		fmt.Fprintln(stdout, "  stop:    Ctrl-C")
		childArgs := []string{
			"--ring-dir", cfg.RingDir,
			"--ring-hot-bytes", strconv.FormatInt(cfg.RingHotBytes, 10),
			"--ring-audit-bytes", strconv.FormatInt(cfg.RingAuditBytes, 10),
			"--ring-audit-wait-us", strconv.Itoa(cfg.RingAuditWaitUs),
			"--status-interval-seconds", strconv.FormatFloat(cfg.StatusIntervalSeconds, 'g', -1, 64),
			"--speed", strconv.FormatFloat(speed, 'g', -1, 64),
		}
		dopts.Exe, dopts.ChildArgs, dopts.Logger, dopts.Out = exe, childArgs, log, stdout
		dopts.BurstEvery = time.Duration(float64(30*time.Second) / max(speed, 0.001))
		dopts.Rings, dopts.Counter = a.Consumer().Rings, a.Counter()
		g.Go(func() error { return demo.Run(gctx, dopts) })
	}
	return g.Wait()
}

// localAddr turns a wildcard listen address into one a user can curl.
func localAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func (c *cli) demoProducerCommand() *cobra.Command {
	var rank, worldSize int
	var burst time.Duration
	var seed uint64
	speed := 1.0
	return c.command(leaf{use: "demo-producer", short: "One synthetic producer of the demo", hidden: true,
		flags: func(fs *pflag.FlagSet) {
			fs.Float64Var(&speed, "speed", 1, "compress the scripted timeline by this factor")
			fs.IntVar(&rank, "rank", 0, "tensor-parallel rank of this synthetic producer")
			fs.IntVar(&worldSize, "world-size", 2, "tensor-parallel world size")
			fs.DurationVar(&burst, "burst-every", 0, "write an overload burst at this interval (0: never)")
			fs.Uint64Var(&seed, "seed", uint64(time.Now().UnixNano()), "random seed")
		},
		run: func(ctx context.Context, cfg config.Config) error {
			ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return demo.RunProducer(ctx, demo.ProducerOptions{
				Dir: cfg.RingDir, Rank: rank, WorldSize: worldSize, HotBytes: cfg.RingHotBytes, AuditBytes: cfg.RingAuditBytes,
				AuditWait: time.Duration(cfg.RingAuditWaitUs) * time.Microsecond, BurstEvery: burst, Seed: seed, Speed: speed,
				StatusInterval: time.Duration(cfg.StatusIntervalSeconds * float64(time.Second)),
			})
		}})
}

func (c *cli) ringsCommand() *cobra.Command {
	var format string
	cmd := c.command(leaf{use: "rings", short: "List the rings (asks a running agent, else reads the files)",
		long: `List every ring in ring_dir with its producer, class, state, fill and counters. The
answer comes from a running agent on admin_listen_address when it serves the same ring
directory, else from the ring files themselves.`,
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&format, "format", "table", "output format: table or json")
		},
		run: func(_ context.Context, cfg config.Config) error {
			stdout := c.stdout
			if format != "table" && format != "json" {
				return fail(2, fmt.Errorf("--format: %q is not table or json", format))
			}
			list, source, err := ringsFromAgent(cfg)
			if err != nil {
				if list, err = rings.Inspect(cfg.RingDir, ""); err != nil {
					return err
				}
				source = "files in " + cfg.RingDir
			}
			if format == "json" {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(agent.RingsResponse{RingDir: cfg.RingDir, Rings: list})
			}
			fmt.Fprintf(stdout, "# source: %s\n", source)
			w := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(w, "PRODUCER\tCLASS\tHOST PID\tSTATE\tFILL\tWRITTEN\tDROPPED\tLOST\tCORRUPT\tREASON / PATH")
			for _, r := range list {
				detail := r.Reason
				if detail == "" {
					detail = filepath.Base(r.Path)
				}
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%.1f%%\t%d\t%d\t%d\t%d\t%s\n", dash(r.Producer), dash(r.Class), r.HostPID, r.State,
					100*r.Fill, r.Written, r.Dropped, r.Lost, r.Corrupt, detail)
			}
			return w.Flush()
		}})
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ringsFromAgent asks a running agent on the admin listener; it is used only
// when that agent serves the same ring directory.
func ringsFromAgent(cfg config.Config) ([]rings.RingInfo, string, error) {
	if cfg.AdminListenAddress == "" {
		return nil, "", errors.New("no admin listener")
	}
	url := "http://" + cfg.AdminListenAddress + "/api/v1/rings"
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("%s: %s", url, resp.Status)
	}
	var r agent.RingsResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, "", err
	}
	if filepath.Clean(r.RingDir) != filepath.Clean(cfg.RingDir) {
		return nil, "", fmt.Errorf("agent at %s serves %s", cfg.AdminListenAddress, r.RingDir)
	}
	return r.Rings, "agent at " + cfg.AdminListenAddress, nil
}

func (c *cli) configCommand() *cobra.Command {
	print := c.command(leaf{use: "print", short: "Print the effective configuration (defaults, file, environment, flags) as YAML",
		run: func(_ context.Context, cfg config.Config) error {
			b, err := config.Render(cfg)
			if err != nil {
				return err
			}
			_, err = c.stdout.Write(b)
			return err
		}})
	return c.group("config", "Print the effective configuration", "The agent's configuration.", print)
}

func (c *cli) rulesCommand() *cobra.Command {
	var out, runbooks, job string
	var scrape time.Duration
	return c.command(leaf{use: "rules", short: "Print the Prometheus rule file: alerts, SLOs, the agent's own alerts, fleet rules",
		long: `Print a Prometheus rule file for the configured alert rules and SLOs (multi-window
burn-rate alerts), the agent's own alerts (group agaobs-self) and the fleet recording
rules (group agaobs-fleet). Check it with promtool check rules.`,
		example: "  agaobs-agent rules --config /etc/agaobs/agaobs.yaml --scrape-interval 30s --out agaobs-rules.yml",
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&out, "out", "", "write the rule file here instead of stdout")
			fs.DurationVar(&scrape, "scrape-interval", promrules.DefaultScrapeInterval,
				"how often Prometheus scrapes the agents: rate() windows below 4 intervals are widened to 4 intervals")
			fs.StringVar(&runbooks, "runbook-base-url", promrules.DefaultRunbookBaseURL,
				"base of the runbook_url annotations of the agent's own alerts (followed by #<alert name, lowercase>)")
			fs.StringVar(&job, "agent-job", promrules.DefaultAgentJob, "Prometheus job label of the agents' scrape targets (AgaobsAgentDown)")
		},
		run: func(_ context.Context, cfg config.Config) error {
			stdout, stderr := c.stdout, c.stderr
			if scrape <= 0 {
				return fail(2, fmt.Errorf("--scrape-interval: %v must be > 0", scrape))
			}
			b, skipped, err := promrules.Generate(promrules.Options{Prefix: cfg.PrometheusPrefix, Naming: schema.Naming(cfg.PrometheusNaming),
				Rules: promrules.AllRules(cfg), SLOs: cfg.SLOs,
				NodeLabel: cfg.PrometheusNodeLabel, SeriesLabels: slices.Sorted(maps.Keys(cfg.PrometheusLabels)),
				ScrapeInterval: scrape, RunbookBaseURL: runbooks, AgentJob: job, GPUXIDWindow: time.Duration(cfg.GPUXIDWindow)})
			if err != nil {
				return err
			}
			for _, s := range skipped {
				fmt.Fprintf(stderr, "agaobs-agent: rule %s not expressible in PromQL: %s\n", s.Rule, s.Reason)
			}
			if out == "" {
				_, err = stdout.Write(b)
				return err
			}
			return os.WriteFile(out, b, 0o644)
		}})
}
