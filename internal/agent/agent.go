package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/agaobs/agaobs/internal/alerting"
	"github.com/agaobs/agaobs/internal/alerting/notify"
	"github.com/agaobs/agaobs/internal/audit"
	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/eventlog"
	"github.com/agaobs/agaobs/internal/gpu"
	"github.com/agaobs/agaobs/internal/health"
	"github.com/agaobs/agaobs/internal/jsonfloat"
	"github.com/agaobs/agaobs/internal/live"
	"github.com/agaobs/agaobs/internal/metrics"
	"github.com/agaobs/agaobs/internal/otlp"
	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/probes"
	"github.com/agaobs/agaobs/internal/rings"
	"github.com/agaobs/agaobs/internal/schema"
	"github.com/agaobs/agaobs/internal/selfmetrics"
	"github.com/agaobs/agaobs/internal/state"
	"github.com/agaobs/agaobs/internal/web"
	toolkitweb "github.com/prometheus/exporter-toolkit/web"
)

// Options are the parts of an Agent that do not come from the config.
type Options struct {
	Logger *slog.Logger
	// Level, if set, is the level variable of Logger; reloads update it.
	Level *slog.LevelVar
	// Loader reloads the config on SIGHUP (Reload); nil disables reloads.
	Loader *config.Loader
	Env    []string
	// Sinks are extra sinks (the demo summary, benchmarks).
	Sinks []pipeline.Sink
	// Version is reported by the admin API.
	Version string
}

// Agent is one running agaobs-agent.
type Agent struct {
	opts     Options
	log      *slog.Logger
	mu       sync.Mutex
	cfg      config.Config
	state    *state.Store
	disp     *pipeline.Dispatcher
	consumer *rings.Consumer
	counter  *pipeline.Counter
	exporter *metrics.Exporter
	registry *metrics.Registry
	otlp     *otlp.Exporter
	live     *live.Live // nil without an admin listener
	alerts   *alerting.Engine
	notifier *notify.Dispatcher
	// audit is the audit trail's writer over auditStore (auditPath is the
	// store's absolute path, "" for memory).
	audit      *audit.Writer
	auditStore audit.Store
	auditPath  string
	// auditVerify re-verifies the chain in the background; nil when
	// audit_verify_interval is 0 (auditverify.go).
	auditVerify *audit.Verifier
	// gpu is nil when gpu_enabled is false; health is always built (the
	// admin status uses it), its listener only when health_enabled.
	gpu        *gpu.Collector
	probes     *probes.Manager // nil when bpf_enabled is false
	prodHealth *health.Producers
	health     *health.Health
	servers    []*web.Server
	// sinkCollectors are the metrics of sinks added with addSink.
	sinkCollectors []namedCollector
	webOpts        web.Options // every listener's timeouts and connection cap
	started        time.Time
}

// New validates the config against the machine (group names, listeners,
// the state file) and builds every component without starting goroutines.
// Errors name what failed; the caller exits 1 (config syntax errors were
// already reported by the loader with exit 2).
func New(cfg config.Config, opts Options) (_ *Agent, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.AgentGOMAXPROCS > 0 {
		runtime.GOMAXPROCS(cfg.AgentGOMAXPROCS)
	}
	a := &Agent{opts: opts, log: opts.Logger, cfg: cfg, counter: pipeline.NewCounter()}
	defer func() {
		if err != nil {
			a.closeAll()
		}
	}()
	// Listeners bound by New are released when a later step fails.
	defer func() {
		if err != nil {
			for _, s := range a.servers {
				s.Close()
			}
		}
	}()
	gid, err := resolveGroup(cfg.RingGroup)
	if err != nil {
		return nil, &config.Error{Key: "ring_group", Source: "config", Msg: err.Error()}
	}
	a.state, err = state.Open(cfg.StatePath, nil)
	if err != nil {
		return nil, err
	}
	if a.state == nil {
		a.log.Warn("state_path is empty: ring verifications and producer names do not survive restarts")
	}
	a.disp = pipeline.NewDispatcher(a.log.With("component", "pipeline"))
	if otlpTracesOn(cfg) {
		// One span decision per event for every sink (the OTLP spans and
		// the metrics sink's exemplars), made by the dispatcher.
		a.disp.SetSpanKeeper(pipeline.NewSpanKeeper(spanKeepOptions(cfg)))
	}
	a.addSink(a.counter, 0) // its latency is the status API's event → sink
	if err := a.newAudit(cfg); err != nil {
		return nil, err
	}
	a.newAuditVerify(cfg)
	// Lossless: audit ring space is released only when the store acks.
	a.disp.Register(a.audit, pipeline.SinkOptions{QueueSize: cfg.SinkQueueSize, Lossless: true})
	a.newGPU(cfg)
	// The AGA aggregation serves /metrics and the OTLP metrics alike.
	if cfg.PrometheusEnabled || otlpMetricsOn(cfg) {
		a.exporter = metrics.New(metrics.Options{Prefix: cfg.PrometheusPrefix, Naming: schema.Naming(cfg.PrometheusNaming),
			ConstLabels: constLabels(cfg), Native: cfg.PrometheusNativeHistograms, Node: NodeName(cfg), ProducerGPUs: a.gpuUUIDs,
			MaxLayersPerProducer: cfg.PrometheusMaxLayersPerProducer, ProducerHistograms: !cfg.PrometheusLayerHistograms,
			SpanStamped: otlpTracesOn(cfg)})
		a.addSink(a.exporter, 0) // event → metric p99 ≤ 5 ms
	}
	var logSink *eventlog.Sink
	if cfg.LogEnabled {
		logSink, err = eventlog.New(eventlog.Options{Format: cfg.LogFormat, Level: cfg.LogLevel, File: cfg.LogFile,
			MaxBytes: cfg.LogMaxBytes, Backups: cfg.LogBackupCount, Stderr: cfg.LogStderr, ForwardSampleRate: cfg.LogForwardSampleRate})
		if err != nil {
			return nil, &config.Error{Key: "log_level", Source: "config", Msg: err.Error()}
		}
		a.addSink(logSink, sinkLinger)
	}
	if cfg.AlertEnabled {
		if err := a.newAlerting(cfg); err != nil {
			return nil, err
		}
		a.addSink(a.alerts, sinkLinger)
	}
	if cfg.OTLPEnabled {
		if err := a.newOTLP(cfg); err != nil {
			return nil, err
		}
	}
	for _, s := range opts.Sinks {
		a.addSink(s, 0)
	}
	a.consumer, err = rings.New(rings.Options{
		Dir: cfg.RingDir, Group: gid, Tunables: tunables(cfg), Dispatcher: a.disp, State: a.state,
		Logger: a.log.With("component", "rings"),
	})
	if err != nil {
		return nil, err
	}
	if err := a.newProbes(cfg); err != nil {
		return nil, err
	}
	a.webOpts = a.webOptions(cfg)
	if err := a.newHealth(cfg); err != nil {
		return nil, err
	}
	a.newLive(cfg)
	if cfg.PrometheusEnabled {
		// Every agaobs_* source goes in one set, complete before the
		// registry checks its descriptors (the exporter's is added there).
		self := selfmetrics.NewSet()
		self.Add("rings", metrics.NewRingsCollector(a.consumer.Snapshot))
		self.Add("consumer", metrics.NewConsumerCollector(a.consumer.Counters))
		pc := metrics.NewPipelineCollector(a.disp.Stats)
		pc.AgentEvents = a.disp.AgentEventStats
		self.Add("pipeline", pc)
		for _, c := range a.sinkCollectors {
			self.Add(c.name, c.col)
		}
		if logSink != nil {
			self.Add("eventlog", logSink.Collector())
		}
		if a.alerts != nil {
			self.Add("alerting", a.alerts.Collector(cfg.PrometheusPrefix))
			self.Add("notify", a.notifier.Collector())
		}
		self.Add("audit", a.audit.Collector())
		if a.auditVerify != nil {
			self.Add("audit_verify", a.auditVerify.Collector())
		}
		self.Add("health", a.health.Collector())
		// Asked at each scrape: the admin listener is bound below.
		self.Add("web", web.Collector(func() []*web.Server { return a.servers }))
		if a.probes != nil {
			self.Add("probes", a.probes.Collector())
		}
		if a.otlp != nil {
			self.Add("otlp", a.otlp.Collector())
		}
		if a.live != nil {
			self.Add("live", a.live.Collector())
		}
		if a.gpu != nil {
			self.Add("gpu", a.gpu.Metrics())
			self.Add("producer_gpu", metrics.NewProducerGPUCollector(a.consumer.Snapshot, a.gpuMemory))
		}
		a.registry = metrics.NewRegistry(constLabels(cfg), a.exporter, self)
		addr := net.JoinHostPort(cfg.PrometheusHost, strconv.Itoa(cfg.PrometheusPort))
		h, err := withLanding("agaobs-agent metrics", "Prometheus metrics of the agaobs node agent", a.opts.Version,
			[]toolkitweb.LandingLinks{{Address: "/metrics", Text: "Metrics"}}, a.registry.Handler(a.log))
		if err != nil {
			return nil, err
		}
		s, err := web.Listen("metrics", addr, h, cfg.WebConfigFile, a.webOpts, a.log)
		if err != nil {
			return nil, err
		}
		a.servers = append(a.servers, s)
	}
	if cfg.AdminListenAddress != "" {
		s, err := web.Listen("admin", cfg.AdminListenAddress, a.adminHandler(), cfg.WebConfigFile, a.webOpts, a.log)
		if err != nil {
			return nil, err
		}
		a.servers = append(a.servers, s)
	}
	return a, nil
}

// sinkLinger is how long events may wait for more before a sink without a
// latency goal of its own (event log, alert engine, producer health, live
// view, OTLP) is woken: at low rates those sinks then wake about 65 times
// a second, not at every consumer pass (every 3 ms while data flows),
// which is most of the agent's CPU at 10 k events/s. The consumer wakes
// them all before it sleeps.
const sinkLinger = 15 * time.Millisecond

// addSink registers a sink with a queue of sink_queue_size events. A sink
// that is also a selfmetrics.Collector has its metrics registered under
// its name (with agaobs_collector_success and duration). It must be
// called before the metrics registry is built in New.
func (a *Agent) addSink(s pipeline.Sink, linger time.Duration) {
	opts := pipeline.SinkOptions{QueueSize: a.cfg.SinkQueueSize, Linger: linger}
	if f, ok := s.(interface {
		Filter() func(*pipeline.Event) bool
	}); ok {
		opts.Filter = f.Filter()
	}
	a.disp.Register(s, opts)
	if c, ok := s.(selfmetrics.Collector); ok {
		a.sinkCollectors = append(a.sinkCollectors, namedCollector{s.Name(), c})
	}
}

type namedCollector struct {
	name string
	col  selfmetrics.Collector
}

func tunables(cfg config.Config) rings.Tunables {
	t := rings.Tunables{
		RescanInterval: time.Duration(cfg.RingRescanInterval),
		PollInterval:   time.Duration(cfg.RingPollInterval),
		IdleSleep:      time.Duration(cfg.RingIdleSleep),
		MaxPerPass:     cfg.RingMaxRecordsPerPass,
		Retention:      time.Duration(cfg.ProducerRetention),
		StaleAfter:     time.Duration(cfg.ProducerHeartbeatStale * float64(time.Second)),
		RemoveDead:     cfg.RingRemoveDead,

		MaxProducersPerUID: cfg.RingMaxProducers,
	}
	for _, u := range cfg.RingAllowedUIDs {
		t.AllowedUIDs = append(t.AllowedUIDs, uint32(u))
	}
	return t
}

// resolveGroup maps ring_group (a name or a numeric gid) to a gid; empty
// gives -1.
func resolveGroup(g string) (int, error) {
	if g == "" {
		return -1, nil
	}
	if n, err := strconv.Atoi(g); err == nil && n >= 0 {
		return n, nil
	}
	gr, err := user.LookupGroup(g)
	if err != nil {
		return 0, fmt.Errorf("unknown group %q", g)
	}
	return strconv.Atoi(gr.Gid)
}

// newAudit opens the audit store and builds its writer.
func (a *Agent) newAudit(cfg config.Config) error {
	st, p, err := audit.Open(audit.OpenOptions{Backend: cfg.AuditStorageBackend, Path: cfg.AuditStoragePath,
		MaxFileBytes: cfg.AuditMaxFileBytes, MaxFiles: cfg.AuditMaxFiles})
	if err != nil {
		return fmt.Errorf("audit store (audit_storage_backend %s, audit_storage_path %s): %w", cfg.AuditStorageBackend, cfg.AuditStoragePath, err)
	}
	a.auditStore, a.auditPath = st, p
	a.audit = audit.NewWriter(audit.WriterOptions{Store: st, BatchSize: cfg.AuditBatchSize,
		FlushInterval: time.Duration(cfg.AuditFlushInterval * float64(time.Second)), RedactKeys: cfg.AuditRedactKeys,
		RetentionDays: cfg.AuditRetentionDays, MaxBytes: cfg.AuditMaxBytes,
		HeadLogInterval: time.Duration(cfg.AuditHeadLogInterval), Logger: a.log.With("component", "audit")})
	if h, err := st.Head(); err == nil {
		a.log.Info("audit store open", "backend", cfg.AuditStorageBackend, "path", p, "head", h.String())
	}
	return nil
}

// auditAlert puts an alert transition on the audit trail (through the
// pipeline, so it is ordered with everything else the agent records).
func (a *Agent) auditAlert(t alerting.AuditTransition) {
	a.disp.Publish(pipeline.Event{Kind: pipeline.KindAgent, TimeNs: t.At.UnixNano(),
		Lifecycle: &pipeline.Lifecycle{Type: pipeline.AlertTransition, Details: map[string]any{
			"rule": t.Rule, "producer": t.Producer, "state": t.State, "severity": t.Severity, "metric": t.Metric,
			"value": jsonfloat.Value(t.Value), "threshold": jsonfloat.Value(t.Threshold), "message": t.Message}}})
}

// newAlerting builds the notifier and the alert engine.
func (a *Agent) newAlerting(cfg config.Config) error {
	var secret []byte
	if cfg.AlertWebhookSecretFile != "" {
		b, err := os.ReadFile(cfg.AlertWebhookSecretFile)
		if err != nil {
			return &config.Error{Key: "alert_webhook_secret_file", Source: "config", Msg: err.Error()}
		}
		secret = []byte(strings.TrimSpace(string(b)))
	}
	var err error
	a.notifier, err = notify.New(notify.Options{
		Logger: a.log.With("component", "alerts"), Timeout: time.Duration(cfg.AlertNotificationTimeout),
		WebhookURL: cfg.AlertWebhookURL, WebhookFormat: cfg.AlertWebhookFormat, WebhookSecret: secret,
		AlertmanagerURLs: cfg.AlertmanagerURLs, ResendInterval: time.Duration(cfg.AlertResendInterval),
		EvalInterval: time.Duration(cfg.AlertEvalInterval), ExecCommand: cfg.AlertExecCommand, LogLevel: cfg.AlertLogLevel,
		// Read once here: the notifier is not rebuilt on SIGHUP, so these
		// keys (not hotReloadable) take effect at restart.
		WebhookHTTPConfig: cfg.AlertWebhookHTTPConfig, AlertmanagerHTTPConfig: cfg.AlertmanagerHTTPConfig,
	})
	if err != nil {
		return fmt.Errorf("alert notifications: %w", err)
	}
	a.alerts, err = alerting.New(alerting.Options{
		Config: cfg, State: a.state, Notifier: a.notifier, Logger: a.log.With("component", "alerts"), Node: NodeName(cfg),
		// The consumer is built after the sinks; the engine asks it at
		// evaluation time.
		Snapshot:     func() *pipeline.Snapshot { return a.consumer.Snapshot() },
		OnTransition: a.auditAlert,
		Extra:        newAnomalyExtras(a).get,
		// For the agent's own alerts the engine raises itself
		// (AgaobsAuditStoreUnwritable, AgaobsSinkDrops).
		AuditWritable: func() bool {
			if a.audit == nil {
				return true
			}
			writable, _, _ := a.audit.Status()
			return writable
		},
		SinkDropped: func() uint64 {
			var n uint64
			for _, s := range a.disp.Stats() {
				n += s.Dropped
			}
			return n
		},
	})
	return err
}

// NodeName is the node this agent runs on: node_name, else NODE_NAME
// (Kubernetes downward API), else the hostname.
func NodeName(cfg config.Config) string {
	if cfg.NodeName != "" {
		return cfg.NodeName
	}
	if n := os.Getenv("NODE_NAME"); n != "" {
		return n
	}
	h, _ := os.Hostname()
	return h
}

// constLabels are the labels of every series: prometheus_labels, and
// node=<node_name> unless prometheus_node_label is false.
func constLabels(cfg config.Config) map[string]string {
	out := make(map[string]string, len(cfg.PrometheusLabels)+1)
	for k, v := range cfg.PrometheusLabels {
		out[k] = v
	}
	if cfg.PrometheusNodeLabel {
		out["node"] = NodeName(cfg)
	}
	return out
}

// Alerts returns the alert engine (nil when alerting is off).
func (a *Agent) Alerts() *alerting.Engine { return a.alerts }

// Counter is the built-in event counter sink.
func (a *Agent) Counter() *pipeline.Counter { return a.counter }

// Consumer returns the ring consumer.
func (a *Agent) Consumer() *rings.Consumer { return a.consumer }

// Dispatcher returns the pipeline dispatcher.
func (a *Agent) Dispatcher() *pipeline.Dispatcher { return a.disp }

// Config returns the current config.
func (a *Agent) Config() config.Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg
}

// AdminAddr returns the admin listener's address, or "".
func (a *Agent) AdminAddr() string { return a.listenerAddr("admin") }

// HealthAddr returns the health listener's address, or "".
func (a *Agent) HealthAddr() string { return a.listenerAddr("health") }

// MetricsAddr returns the metrics listener's address, or "".
func (a *Agent) MetricsAddr() string { return a.listenerAddr("metrics") }

func (a *Agent) listenerAddr(name string) string {
	for _, s := range a.servers {
		if s.Name == name {
			return s.Addr()
		}
	}
	return ""
}

// Registry returns the metrics registry (nil when Prometheus is off).
func (a *Agent) Registry() *metrics.Registry { return a.registry }

// Run runs the agent until ctx ends. Shutdown order: the consumer stops and
// drains what producers committed; the dispatcher delivers every queued
// event and flushes the sinks; the audit writer commits and acknowledges
// what it holds; the consumer
// then releases acknowledged audit space, stores the heads and unmaps the
// rings; the HTTP listeners stop; the state file closes last.
func (a *Agent) Run(ctx context.Context) error {
	// New parsed the kernel's BTF for the eBPF probes (MiBs of garbage
	// once the programs are loaded) and the config; left to the
	// scavenger, that memory stays in RSS for a minute or more. Give it
	// back once, before any work.
	debug.FreeOSMemory()
	a.started = time.Now()
	a.disp.Start()
	a.disp.Publish(pipeline.Event{Kind: pipeline.KindAgent, TimeNs: time.Now().UnixNano(),
		Lifecycle: &pipeline.Lifecycle{Type: pipeline.ConfigLoaded, Keys: config.Diff(config.Default(), a.Config())}})

	consumerCtx, stopConsumer := context.WithCancel(context.Background())
	defer stopConsumer()
	consumerDone := make(chan error, 1)
	go func() { consumerDone <- a.consumer.Run(consumerCtx) }()

	// The audit writer stops after the pipeline's final drain, before the
	// consumer releases acknowledged audit space.
	auditCtx, stopAudit := context.WithCancel(context.Background())
	defer stopAudit()
	auditDone := make(chan struct{})
	go func() { defer close(auditDone); _ = a.audit.Run(auditCtx) }()

	// Health and the GPU collector run until the listeners stop.
	auxCtx, stopAux := context.WithCancel(context.Background())
	defer stopAux()
	var auxWG sync.WaitGroup
	if a.otlp != nil {
		auxWG.Add(1)
		go func() { defer auxWG.Done(); _ = a.otlp.Run(auxCtx) }()
	}
	auxWG.Add(1)
	go func() { defer auxWG.Done(); _ = a.health.Run(auxCtx) }()
	if a.live != nil {
		auxWG.Add(1)
		go func() { defer auxWG.Done(); _ = a.live.Run(auxCtx) }()
	}
	if a.gpu != nil {
		auxWG.Add(1)
		go func() { defer auxWG.Done(); _ = a.gpu.Run(auxCtx) }()
	}

	// The alert engine and the notifier stop after the pipeline has
	// delivered its last events, so a final evaluation can still notify.
	alertCtx, stopAlerts := context.WithCancel(context.Background())
	defer stopAlerts()
	notifyCtx, stopNotify := context.WithCancel(context.Background())
	defer stopNotify()
	var alertWG sync.WaitGroup
	if a.alerts != nil {
		alertWG.Add(2)
		go func() { defer alertWG.Done(); _ = a.notifier.Run(notifyCtx) }()
		go func() { defer alertWG.Done(); _ = a.alerts.Run(alertCtx) }()
	}

	g, gctx := errgroup.WithContext(ctx)
	serveCtx, stopServers := context.WithCancel(context.Background())
	defer stopServers()
	for _, s := range a.servers {
		g.Go(func() error { return s.Run(serveCtx) })
	}
	if a.probes != nil {
		// Under bpf_require a failing probe ends the agent (exit 1).
		g.Go(func() error { return a.probes.Run(gctx) })
	}
	a.goAuditVerify(gctx, g)
	g.Go(func() error {
		select {
		case <-gctx.Done():
			return nil
		case err := <-consumerDone:
			consumerDone <- err
			return fmt.Errorf("ring consumer stopped: %w", err)
		}
	})
	// Wait for the signal (ctx) or a component failure (gctx).
	<-gctx.Done()
	stopConsumer()
	cerr := <-consumerDone
	a.audit.Closing()
	a.disp.Close()
	stopAudit() // commits what is pending and acknowledges it
	<-auditDone
	a.consumer.Close()
	stopAlerts() // saves alert and SLO state
	stopNotify() // drains queued notifications (bounded by the timeout)
	alertWG.Wait()
	stopAux()
	auxWG.Wait()
	stopServers()
	err := g.Wait()
	a.closeAll()
	a.log.Info("agent stopped")
	return errors.Join(err, cerr)
}

func (a *Agent) closeAll() {
	if a.auditStore != nil {
		if err := a.auditStore.Close(); err != nil {
			a.log.Warn("closing audit store", "err", err)
		}
		a.auditStore = nil
	}
	if a.state != nil {
		if err := a.state.Close(); err != nil {
			a.log.Warn("closing state file", "err", err)
		}
		a.state = nil
	}
}

// Reload re-reads the configuration (SIGHUP). An invalid new config is
// rejected and the old one kept. Settings that need a restart are named in
// the log.
func (a *Agent) Reload() error {
	if a.opts.Loader == nil {
		return errors.New("reload: agent has no config loader")
	}
	next, warns, err := a.opts.Loader.Load(a.opts.Env)
	if err != nil {
		a.log.Error("config reload rejected; keeping the previous config", "err", err)
		return err
	}
	for _, w := range warns {
		a.log.Warn("config", "warning", w)
	}
	if _, err := resolveGroup(next.RingGroup); err != nil {
		err = &config.Error{Key: "ring_group", Source: "config", Msg: err.Error()}
		a.log.Error("config reload rejected; keeping the previous config", "err", err)
		return err
	}
	a.mu.Lock()
	changed := config.Diff(a.cfg, next)
	a.cfg = next
	a.mu.Unlock()
	var restart []string
	for _, k := range changed {
		if !hotReloadable(k) {
			restart = append(restart, k)
		}
	}
	a.consumer.SetTunables(tunables(next))
	if a.alerts != nil {
		a.alerts.Reload(next)
	}
	if a.opts.Level != nil {
		a.opts.Level.Set(parseLevel(next.AgentLogLevel))
	}
	a.disp.Publish(pipeline.Event{Kind: pipeline.KindAgent, TimeNs: time.Now().UnixNano(),
		Lifecycle: &pipeline.Lifecycle{Type: pipeline.ConfigReloaded, Keys: changed}})
	a.log.Info("config reloaded", "changed", strings.Join(changed, ","))
	if len(restart) > 0 {
		a.log.Warn("some changed settings take effect only after a restart", "keys", strings.Join(restart, ","))
	}
	return nil
}

// hotReloadable reports whether a reload applies key at once.
func hotReloadable(key string) bool {
	switch key {
	case "ring_allowed_uids", "ring_rescan_interval", "ring_poll_interval", "ring_idle_sleep",
		"ring_max_records_per_pass", "ring_remove_dead", "producer_retention",
		"producer_heartbeat_stale_seconds", "agent_log_level",
		"alert_rules", "slos", "alert_use_default_rules":
		return true
	}
	return false
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(s))
	return l
}

// NewLogger builds the agent's own logger (agent_log_level,
// agent_log_format) on stderr.
func NewLogger(cfg config.Config) (*slog.Logger, *slog.LevelVar) {
	lv := new(slog.LevelVar)
	lv.Set(parseLevel(cfg.AgentLogLevel))
	hopts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, hopts)
	if cfg.AgentLogFormat == "json" {
		h = slog.NewJSONHandler(os.Stderr, hopts)
	}
	return slog.New(h), lv
}

// AuditStore returns the audit store (tests and tools in this process).
func (a *Agent) AuditStore() audit.Store { return a.auditStore }
