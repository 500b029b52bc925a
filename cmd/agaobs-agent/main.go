// Command agaobs-agent is the agaobs node agent: it consumes the shared-memory
// rings of AGA inference processes and feeds metrics, logs, alerts, audit and
// health. See README.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/agaobs/agaobs/internal/agent"
	"github.com/agaobs/agaobs/internal/alerting/promrules"
	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/demo"
	"github.com/agaobs/agaobs/internal/rings"
	"github.com/agaobs/agaobs/internal/schema"
)

// version is set at link time (make build); "dev" otherwise.
var version = "dev"

const usage = `agaobs-agent: out-of-process observability for AGA inference servers.

Usage:
  agaobs-agent [run] [flags]          consume the rings and serve (default)
  agaobs-agent demo [flags]           the agent plus synthetic AGA producers
  agaobs-agent rings [--format table|json] [flags]
                                      list rings (asks a running agent, else reads the files)
  agaobs-agent rules [--out FILE] [--scrape-interval 15s] [--runbook-base-url URL] [--agent-job JOB] [flags]
                                      Prometheus rule file: the configured alert rules and SLOs, the
                                      agent's own alerts and the fleet recording rules
  agaobs-agent dashboard [--fleet] [--out FILE] [--api-wrapper] [flags]
                                      Grafana dashboard JSON: node, or --fleet (--title, --refresh)
  agaobs-agent audit query|verify|export|head|compact [flags]
                                      the audit trail (agaobs-agent audit help)
  agaobs-agent health [--check NAME] [--strict] [flags]  probe health: exit 0 ok, 1 not ok, 2 unknown
  agaobs-agent config print [flags]   print the effective configuration
  agaobs-agent version                print the version

Every subcommand accepts the configuration flags (--config FILE and one flag per
key, e.g. --ring-dir, --prometheus-port); see docs/configuration.md.
Exit status: 0 ok, 1 runtime error, 2 bad usage or configuration.
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// exitError carries an exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// Unwrap lets run() recognise errHelp inside an exit code.
func (e *exitError) Unwrap() error { return e.err }

func fail(code int, err error) error { return &exitError{code, err} }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "run":
		err = cmdRun(ctx, args, stdout, stderr, false)
	case "demo":
		err = cmdRun(ctx, args, stdout, stderr, true)
	case "demo-producer":
		err = cmdDemoProducer(ctx, args, stderr)
	case "rings":
		err = cmdRings(args, stdout, stderr)
	case "rules":
		err = cmdRules(args, stdout, stderr)
	case "dashboard":
		err = cmdDashboard(args, stdout, stderr)
	case "audit":
		err = cmdAudit(args, stdout, stderr)
	case "health":
		err = cmdHealth(args, stdout, stderr)
	case "config":
		if len(args) == 0 || args[0] != "print" {
			err = fail(2, errors.New("usage: agaobs-agent config print [flags]"))
		} else {
			err = cmdConfigPrint(args[1:], stdout, stderr)
		}
	case "version":
		fmt.Fprintln(stdout, versionString())
	case "help":
		fmt.Fprint(stdout, usage)
	default:
		err = fail(2, fmt.Errorf("unknown command %q\n\n%s", cmd, usage))
	}
	if err == nil {
		return 0
	}
	var ee *exitError
	code := 1
	if errors.As(err, &ee) {
		code = ee.code
	}
	var ce *config.Error
	if errors.As(err, &ce) {
		code = 2
	}
	if !errors.Is(err, errHelp) {
		fmt.Fprintf(stderr, "agaobs-agent: %v\n", err)
	}
	return code
}

var errHelp = errors.New("help requested")

func versionString() string {
	goVersion := runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
	}
	return fmt.Sprintf("agaobs-agent %s (%s %s/%s)", version, goVersion, runtime.GOOS, runtime.GOARCH)
}

// parse parses the flags of a subcommand (config flags included) and loads
// the configuration. Exit status 2 on any usage or config error.
func parse(name string, args []string, stdout, stderr io.Writer, extra func(fs *pflag.FlagSet)) (config.Config, *config.Loader, error) {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	loader := config.NewLoader(fs)
	showVersion := fs.Bool("version", false, "print the version and exit")
	if extra != nil {
		extra(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage of agaobs-agent %s:\n%s", name, fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return config.Config{}, nil, fail(0, errHelp)
		}
		return config.Config{}, nil, fail(2, err)
	}
	if fs.NArg() > 0 {
		return config.Config{}, nil, fail(2, fmt.Errorf("%s: unexpected argument %q", name, fs.Arg(0)))
	}
	if *showVersion {
		fmt.Fprintln(stdout, versionString())
		return config.Config{}, nil, fail(0, errHelp)
	}
	cfg, warns, err := loader.Load(os.Environ())
	if err != nil {
		return config.Config{}, nil, fail(2, err)
	}
	for _, w := range warns {
		fmt.Fprintf(stderr, "agaobs-agent: warning: %s\n", w)
	}
	return cfg, loader, nil
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer, withDemo bool) error {
	name := "run"
	if withDemo {
		name = "demo"
	}
	dopts := demo.Options{Producers: 2, KillFirst: 40 * time.Second, KillEvery: 3 * time.Minute}
	speed := 1.0
	var extra func(fs *pflag.FlagSet)
	if withDemo {
		extra = func(fs *pflag.FlagSet) {
			fs.IntVar(&dopts.Producers, "producers", dopts.Producers, "demo: number of synthetic producers (tensor-parallel ranks)")
			fs.DurationVar(&dopts.KillFirst, "kill-first", dopts.KillFirst, "demo: SIGKILL the last rank after this long")
			fs.DurationVar(&dopts.KillEvery, "kill-every", dopts.KillEvery, "demo: then SIGKILL it again at this interval")
			fs.Float64Var(&speed, "speed", speed, "demo: compress the producers' scripted timeline by this factor")
		}
	}
	cfg, loader, err := parse(name, args, stdout, stderr, extra)
	if err != nil {
		return err
	}
	if withDemo && len(cfg.SLOs) == 0 {
		// The demo shows one SLO: 99 % of forwards within 1 ms.
		cfg.SLOs = []config.SLO{{Name: "demo_latency", Objective: 0.99, Period: config.Duration(30 * 24 * time.Hour),
			SLI: config.SLI{Type: "latency", ThresholdUs: 1000}}}
	}
	log, level := agent.NewLogger(cfg)
	a, err := agent.New(cfg, agent.Options{Logger: log, Level: level, Loader: loader, Env: os.Environ(), Version: version})
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
	log.Info("agaobs-agent started", "version", version, "ring_dir", cfg.RingDir, "metrics", a.MetricsAddr(), "admin", a.AdminAddr())
	if withDemo {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "agaobs demo: agent consuming %s; synthetic producers starting.\n", cfg.RingDir)
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

func cmdDemoProducer(ctx context.Context, args []string, stderr io.Writer) error {
	var rank, worldSize int
	var burst time.Duration
	var seed uint64
	speed := 1.0
	cfg, _, err := parse("demo-producer", args, os.Stdout, stderr, func(fs *pflag.FlagSet) {
		fs.Float64Var(&speed, "speed", 1, "compress the scripted timeline by this factor")
		fs.IntVar(&rank, "rank", 0, "tensor-parallel rank of this synthetic producer")
		fs.IntVar(&worldSize, "world-size", 2, "tensor-parallel world size")
		fs.DurationVar(&burst, "burst-every", 0, "write an overload burst at this interval (0: never)")
		fs.Uint64Var(&seed, "seed", uint64(time.Now().UnixNano()), "random seed")
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return demo.RunProducer(ctx, demo.ProducerOptions{
		Dir: cfg.RingDir, Rank: rank, WorldSize: worldSize, HotBytes: cfg.RingHotBytes, AuditBytes: cfg.RingAuditBytes,
		AuditWait: time.Duration(cfg.RingAuditWaitUs) * time.Microsecond, BurstEvery: burst, Seed: seed, Speed: speed,
		StatusInterval: time.Duration(cfg.StatusIntervalSeconds * float64(time.Second)),
	})
}

func cmdRings(args []string, stdout, stderr io.Writer) error {
	var format string
	cfg, _, err := parse("rings", args, stdout, stderr, func(fs *pflag.FlagSet) {
		fs.StringVar(&format, "format", "table", "output format: table or json")
	})
	if err != nil {
		return err
	}
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

func cmdConfigPrint(args []string, stdout, stderr io.Writer) error {
	cfg, _, err := parse("config print", args, stdout, stderr, nil)
	if err != nil {
		return err
	}
	b, err := config.Render(cfg)
	if err != nil {
		return err
	}
	_, err = stdout.Write(b)
	return err
}

func cmdRules(args []string, stdout, stderr io.Writer) error {
	var out, runbooks, job string
	var scrape time.Duration
	cfg, _, err := parse("rules", args, stdout, stderr, func(fs *pflag.FlagSet) {
		fs.StringVar(&out, "out", "", "write the rule file here instead of stdout")
		fs.DurationVar(&scrape, "scrape-interval", promrules.DefaultScrapeInterval,
			"how often Prometheus scrapes the agents: rate() windows below 4 intervals are widened to 4 intervals")
		fs.StringVar(&runbooks, "runbook-base-url", promrules.DefaultRunbookBaseURL,
			"base of the runbook_url annotations of the agent's own alerts (followed by #<alert name, lowercase>)")
		fs.StringVar(&job, "agent-job", promrules.DefaultAgentJob, "Prometheus job label of the agents' scrape targets (AgaobsAgentDown)")
	})
	if err != nil {
		return err
	}
	if scrape <= 0 {
		return fail(2, fmt.Errorf("--scrape-interval: %v must be > 0", scrape))
	}
	b, skipped, err := promrules.Generate(promrules.Options{Prefix: cfg.PrometheusPrefix, Naming: schema.Naming(cfg.PrometheusNaming),
		Rules: promrules.EffectiveRules(cfg.AlertUseDefaultRules, cfg.AlertRules), SLOs: cfg.SLOs,
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
}
