package otlp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/agaobs/agaobs/internal/pipeline"
)

const (
	// exportBatch is the most spans or log records one export call sends.
	exportBatch = 512
	// exportEvery is how long a partial batch waits.
	exportEvery = time.Second
	// finalDrain bounds the last export at shutdown.
	finalDrain = 5 * time.Second
	// signalAudit names the audit log export in the self-metrics.
	signalAudit = "audit_logs"
	scope       = "github.com/agaobs/agaobs/internal/otlp"
)

// Exporter is the OTLP sink. Write runs on the sink's goroutine; Run owns
// the export goroutines and the audit tail.
type Exporter struct {
	opts  Options
	log   *slog.Logger
	stats map[string]*signalStats

	spans     *queue[sdktrace.ReadOnlySpan]
	records   *queue[sdklog.Record]
	traceExp  sdktrace.SpanExporter
	logExp    sdklog.Exporter
	metricExp sdkmetric.Exporter

	mu        sync.Mutex // producers, orphans, known
	producers map[string]*producerState
	known     map[string]*pipeline.Producer // every live producer by name (metrics resources)
	orphans   map[string]*producerState     // audit loggers of producers no longer tracked
	retired   sync.WaitGroup                // providers of forgotten producers shutting down
	delta     bool
	deltas    *deltas // the metrics goroutine's
	logMu     sync.Mutex
	lastLog   map[string]time.Time // by signal: failures are logged once a minute

	auditCursor atomic.Uint64
	auditWake   chan struct{}
}

// producerState holds one producer's SDK providers: its resource is its
// identity.
type producerState struct {
	producer *pipeline.Producer
	res      *resource.Resource
	tp       *sdktrace.TracerProvider
	tracer   trace.Tracer
	lp       *sdklog.LoggerProvider
	logger   otellog.Logger
}

// New builds the exporter and the SDK exporters of the enabled signals
// (no connection is made yet: the gRPC client connects lazily).
func New(ctx context.Context, opts Options) (*Exporter, error) {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 2048
	}
	if opts.MetricsInterval <= 0 {
		opts.MetricsInterval = 15 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Prefix == "" {
		opts.Prefix = "aga"
	}
	// The SDK reports a failed periodic metric export only to the global
	// error handler (by default a log line on stderr per failure); the
	// counting exporter already counts them, so they go to the agent's log,
	// at most one a minute. Global by the SDK's design: the last exporter
	// built in a process owns it.
	var lastErr atomic.Int64
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		if now := time.Now().UnixNano(); now-lastErr.Load() > int64(time.Minute) {
			lastErr.Store(now)
			opts.Logger.Warn("otlp: export failed", "err", err)
		}
	}))
	e := &Exporter{opts: opts, log: opts.Logger,
		stats: map[string]*signalStats{}, producers: map[string]*producerState{}, orphans: map[string]*producerState{}, known: map[string]*pipeline.Producer{},
		auditWake: make(chan struct{}, 1), delta: opts.delta(), deltas: newDeltas(), lastLog: map[string]time.Time{}}
	var err error
	if opts.has(SignalTraces) {
		if e.traceExp, err = opts.newTraceExporter(ctx); err != nil {
			return nil, fmt.Errorf("otlp traces: %w", err)
		}
		e.spans = newQueue[sdktrace.ReadOnlySpan](opts.QueueSize)
		e.stats[SignalTraces] = newSignalStats()
		e.stats[SignalTraces].queueLen = e.spans.len
	}
	if opts.has(SignalLogs) {
		if e.logExp, err = opts.newLogExporter(ctx); err != nil {
			return nil, fmt.Errorf("otlp logs: %w", err)
		}
		e.records = newQueue[sdklog.Record](opts.QueueSize)
		e.stats[SignalLogs] = newSignalStats()
		e.stats[SignalLogs].queueLen = e.records.len
		if opts.Audit != nil {
			e.stats[signalAudit] = newSignalStats()
		}
	}
	if opts.has(SignalMetrics) {
		if e.metricExp, err = opts.newMetricExporter(ctx); err != nil {
			return nil, fmt.Errorf("otlp metrics: %w", err)
		}
		e.stats[SignalMetrics] = newSignalStats()
	}
	return e, nil
}

// Name is the sink's name.
func (e *Exporter) Name() string { return "otlp" }

// Kinds are the events the exporter reads: the AGA events, HELLOs
// (identity changes) and lifecycle events (producers forgotten).
func (e *Exporter) Kinds() pipeline.KindMask {
	return pipeline.KindForward.Mask() | pipeline.KindRetrieval.Mask() | pipeline.KindAudit.Mask() |
		pipeline.KindEvent.Mask() | pipeline.KindHello.Mask() | pipeline.KindLifecycle.Mask()
}

// Filter returns the sink's dispatch filter (pipeline.SinkOptions.Filter):
// an AGA event only when it becomes a span (or is counted as capped) or an
// event-log record. The span decision is made once, by the dispatcher
// (Event.Span); most forwards are neither, and never reach this sink's
// queue. The dispatcher calls it for every event of the sink's kinds, so
// it is a closure over the exporter's fixed settings: a method value
// through an interface cost a second indirect call per event.
func (e *Exporter) Filter() func(*pipeline.Event) bool {
	traces := e.traceExp != nil
	return func(ev *pipeline.Event) bool {
		switch ev.Kind {
		case pipeline.KindForward, pipeline.KindRetrieval, pipeline.KindAudit, pipeline.KindEvent:
			return traces && ev.Span != pipeline.SpanDropped || e.logs(ev)
		}
		return true
	}
}

// logs reports whether an event becomes an event-log record.
func (e *Exporter) logs(ev *pipeline.Event) bool {
	return e.records != nil && ev.SeedLevel() >= e.opts.LogLevel
}

// Write turns events into spans and log records. It never waits for the
// collector, and costs a forward that is neither kept nor logged only the
// span decision.
func (e *Exporter) Write(ctx context.Context, batch []pipeline.Event) error {
	var last *pipeline.Producer
	for i := range batch {
		ev := &batch[i]
		switch ev.Kind {
		case pipeline.KindLifecycle:
			switch {
			case ev.Producer == nil || ev.Lifecycle == nil:
			case ev.Lifecycle.Type == pipeline.ProducerForgotten:
				e.retire(ev.Producer)
			default:
				e.note(ev.Producer) // appeared: its resource names its metrics
			}
			continue
		case pipeline.KindHello:
			if ev.Producer != nil {
				e.note(ev.Producer)
				e.rebuildIfChanged(ev.Producer)
			}
			continue
		}
		if ev.Producer == nil {
			continue
		}
		if ev.Producer != last {
			last = ev.Producer
			e.note(last)
		}
		reason := pipeline.SpanDropped
		if e.traceExp != nil {
			if reason = ev.Span; reason == pipeline.SpanCapped {
				e.stats[SignalTraces].drop(reasonRateLimited, 1)
			}
		}
		logIt := e.logs(ev)
		if !reason.Kept() && !logIt {
			continue
		}
		st := e.state(ev.Producer)
		var sc trace.SpanContext
		if reason.Kept() {
			sc = e.span(st, ev, reason)
		}
		if logIt {
			e.emitEventLog(st, ev, sc)
		}
	}
	return nil
}

// note records a live producer (its resource names its metrics).
func (e *Exporter) note(p *pipeline.Producer) {
	e.mu.Lock()
	if e.known[p.Name] != p {
		e.known[p.Name] = p
	}
	e.mu.Unlock()
}

// Flush is called when the pipeline closes; the export goroutines (Run)
// send what is queued.
func (e *Exporter) Flush(context.Context) error { return nil }

// state returns the producer's providers, building them on first use.
func (e *Exporter) state(p *pipeline.Producer) *producerState {
	e.mu.Lock()
	defer e.mu.Unlock()
	if st := e.producers[p.Name]; st != nil && st.producer == p {
		return st
	} else if st != nil {
		// A new incarnation took the name over: its identity may differ.
		e.shutdownAsync(st)
	}
	st := e.newState(p, producerResource(p, e.opts.Node))
	e.producers[p.Name] = st
	return st
}

// newState builds providers for a resource; p may be nil (an audit record
// of a producer no longer tracked).
func (e *Exporter) newState(p *pipeline.Producer, res *resource.Resource) *producerState {
	st := &producerState{producer: p, res: res}
	if e.traceExp != nil {
		st.tp = sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSampler(sdktrace.AlwaysSample()),
			sdktrace.WithIDGenerator(recordIDs{}), sdktrace.WithSpanProcessor(&spanProcessor{e: e}))
		st.tracer = st.tp.Tracer(scope)
	}
	if e.records != nil {
		st.lp = sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(&logProcessor{e: e}))
		st.logger = st.lp.Logger(scope)
	}
	return st
}

// rebuildIfChanged gives a producer new providers when a HELLO changed
// its resource (model, pod, rank...).
func (e *Exporter) rebuildIfChanged(p *pipeline.Producer) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.producers[p.Name]
	if st == nil {
		return
	}
	res := producerResource(p, e.opts.Node)
	if res.Equal(st.res) {
		return
	}
	e.shutdownAsync(st)
	e.producers[p.Name] = e.newState(p, res)
}

// retire shuts a forgotten producer's providers down.
func (e *Exporter) retire(p *pipeline.Producer) {
	e.mu.Lock()
	defer e.mu.Unlock()
	name := p.Name
	if e.known[name] == p {
		delete(e.known, name)
	}
	if st := e.producers[name]; st != nil {
		delete(e.producers, name)
		e.shutdownAsync(st)
	}
}

// shutdownAsync ends a state's providers off the sink goroutine (a
// metric provider's last export waits for the collector). Callers hold mu.
func (e *Exporter) shutdownAsync(st *producerState) {
	e.retired.Add(1)
	go func() {
		defer e.retired.Done()
		ctx, cancel := context.WithTimeout(context.Background(), e.exportTimeout())
		defer cancel()
		e.shutdownState(ctx, st)
	}()
}

func (e *Exporter) shutdownState(ctx context.Context, st *producerState) {
	if st.tp != nil {
		_ = st.tp.Shutdown(ctx)
	}
	if st.lp != nil {
		_ = st.lp.Shutdown(ctx)
	}
}

func (e *Exporter) exportTimeout() time.Duration {
	if e.opts.Timeout > 0 {
		return e.opts.Timeout
	}
	return 10 * time.Second
}

// Run exports queued spans and log records and tails the audit store until
// ctx ends, then sends what is left (within a few seconds) and shuts the
// providers down.
func (e *Exporter) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	if e.spans != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runLoop(ctx, e, e.spans, e.stats[SignalTraces], SignalTraces, e.traceExp.ExportSpans)
		}()
	}
	if e.records != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runLoop(ctx, e, e.records, e.stats[SignalLogs], SignalLogs, e.logExp.Export)
		}()
		if e.opts.Audit != nil {
			wg.Add(1)
			go func() { defer wg.Done(); e.tailAudit(ctx) }()
		}
	}
	if e.metricExp != nil {
		wg.Add(1)
		go func() { defer wg.Done(); e.metricsLoop(ctx) }()
	}
	<-ctx.Done()
	wg.Wait()
	e.retired.Wait()
	sctx, cancel := context.WithTimeout(context.Background(), finalDrain)
	defer cancel()
	e.mu.Lock()
	states := make([]*producerState, 0, len(e.producers))
	for _, st := range e.producers {
		states = append(states, st)
	}
	e.mu.Unlock()
	for _, st := range states {
		e.shutdownState(sctx, st)
	}
	var errs []error
	if e.traceExp != nil {
		errs = append(errs, e.traceExp.Shutdown(sctx))
	}
	if e.logExp != nil {
		errs = append(errs, e.logExp.Shutdown(sctx))
	}
	if e.metricExp != nil {
		errs = append(errs, e.metricExp.Shutdown(sctx))
	}
	if err := errors.Join(errs...); err != nil {
		e.log.Debug("otlp: shutdown", "err", err)
	}
	return nil
}

// metricsLoop exports metrics every otlp_metrics_interval, and once more
// at the end (the last values since the previous export).
func (e *Exporter) metricsLoop(ctx context.Context) {
	t := time.NewTicker(e.opts.MetricsInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), finalDrain)
			defer cancel()
			e.exportMetrics(fctx)
			return
		case <-t.C:
			e.exportMetrics(ctx)
		}
	}
}

// logFailure logs a failed export, at most once a minute per signal.
func (e *Exporter) logFailure(signal string, n int, err error) {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	if time.Since(e.lastLog[signal]) < time.Minute {
		return
	}
	e.lastLog[signal] = time.Now()
	e.log.Warn("otlp export failed; dropped", "signal", signal, "items", n, "err", err)
}

// runLoop drains one signal's queue: a batch when it is full or every
// exportEvery; at the end what is left, within finalDrain.
func runLoop[T any](ctx context.Context, e *Exporter, q *queue[T], st *signalStats, signal string,
	export func(context.Context, []T) error) {
	t := time.NewTicker(exportEvery)
	defer t.Stop()
	send := func(ctx context.Context, batch []T) {
		start := time.Now()
		err := export(ctx, batch)
		st.exported(len(batch), time.Since(start), err)
		if err != nil {
			st.drop(reasonExportError, len(batch))
			e.logFailure(signal, len(batch), err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), finalDrain)
			defer cancel()
			for {
				batch := q.take(exportBatch)
				if len(batch) == 0 {
					return
				}
				if dctx.Err() != nil {
					st.drop(reasonShutdown, len(batch)+q.len())
					q.take(q.len())
					return
				}
				send(dctx, batch)
			}
		case <-q.wake:
		case <-t.C:
		}
		for {
			batch := q.take(exportBatch)
			if len(batch) == 0 {
				break
			}
			send(context.Background(), batch)
			if len(batch) < exportBatch || ctx.Err() != nil {
				break
			}
		}
	}
}
