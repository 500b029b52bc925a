// Package eventlog owns the structured event log (the seed's LogExporter,
// out of process): one line per producer event, JSON or text, to stderr
// and/or a size-rotated file (lumberjack). It is a pipeline sink on its own
// bounded queue, so a slow disk never slows ring consumption; events below
// log_level are never formatted and forward events can be sampled.
package eventlog

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/pyfmt"
	"github.com/agaobs/agaobs/internal/shm"
)

// Python logging levels, as the seed used them.
const (
	levelDebug    = 10
	levelInfo     = 20
	levelWarning  = 30
	levelError    = 40
	levelCritical = 50
)

func levelName(l int) string {
	switch l {
	case levelDebug:
		return "DEBUG"
	case levelInfo:
		return "INFO"
	case levelWarning:
		return "WARNING"
	case levelError:
		return "ERROR"
	}
	return "CRITICAL"
}

// ParseLevel maps a log_level name to its number.
func ParseLevel(s string) (int, error) {
	switch strings.ToUpper(s) {
	case "DEBUG":
		return levelDebug, nil
	case "INFO":
		return levelInfo, nil
	case "WARNING", "WARN":
		return levelWarning, nil
	case "ERROR":
		return levelError, nil
	case "CRITICAL":
		return levelCritical, nil
	}
	return 0, fmt.Errorf("unknown log level %q", s)
}

// Options configure a Sink (the reference's log_* keys).
type Options struct {
	Format string // json (default) or text
	Level  string // default INFO
	// File, if set, is written with size rotation.
	File string
	// MaxBytes rotates the file at this size. lumberjack counts in MiB:
	// the size is rounded up to whole MiB (at least 1).
	MaxBytes int64
	Backups  int
	// Stderr also writes lines to Stderr; with no File lines go there
	// regardless.
	Stderr bool
	// ForwardSampleRate logs 1 in N forward events (default 1).
	ForwardSampleRate int
	// Out overrides stderr (tests).
	Out io.Writer
	// Now is the clock of the line timestamps (tests).
	Now func() time.Time
}

// Sink writes event log lines. Write runs on the sink's own goroutine.
type Sink struct {
	opts       Options
	level      int
	json       bool
	w          io.Writer
	file       *lumberjack.Logger
	buf        []byte
	scratch    []byte
	compact    bytes.Buffer // appendRawJSON's
	fwdSeen    uint64
	lines      [5]atomic.Uint64 // by level index
	sampledOut atomic.Uint64
}

// New opens the sink's outputs.
func New(opts Options) (*Sink, error) {
	lvl, err := ParseLevel(or(opts.Level, "INFO"))
	if err != nil {
		return nil, err
	}
	if opts.ForwardSampleRate < 1 {
		opts.ForwardSampleRate = 1
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	out := opts.Out
	if out == nil {
		out = os.Stderr
	}
	s := &Sink{opts: opts, level: lvl, json: opts.Format != "text"}
	var ws []io.Writer
	if opts.File != "" {
		s.file = &lumberjack.Logger{Filename: opts.File, MaxSize: MaxSizeMiB(opts.MaxBytes), MaxBackups: opts.Backups}
		ws = append(ws, s.file)
	}
	if opts.File == "" || opts.Stderr {
		ws = append(ws, out)
	}
	s.w = io.MultiWriter(ws...)
	return s, nil
}

// MaxSizeMiB converts log_max_bytes to lumberjack's MiB, rounding up.
func MaxSizeMiB(b int64) int {
	if b <= 0 {
		return 100 // lumberjack's default, and the seed's 100 MiB
	}
	return int((b + (1<<20 - 1)) >> 20)
}

// Name implements pipeline.Sink.
func (s *Sink) Name() string { return "log" }

// Kinds implements pipeline.Sink.
func (s *Sink) Kinds() pipeline.KindMask {
	return pipeline.KindForward.Mask() | pipeline.KindRetrieval.Mask() | pipeline.KindAudit.Mask() | pipeline.KindEvent.Mask()
}

// Write implements pipeline.Sink: one write per batch.
func (s *Sink) Write(_ context.Context, batch []pipeline.Event) error {
	s.buf = s.buf[:0]
	for i := range batch {
		ev := &batch[i]
		lvl := eventLevel(ev)
		if lvl < s.level {
			continue // never formatted
		}
		if ev.Kind == pipeline.KindForward {
			s.fwdSeen++
			if (s.fwdSeen-1)%uint64(s.opts.ForwardSampleRate) != 0 {
				s.sampledOut.Add(1)
				continue
			}
		}
		s.format(ev, lvl)
		s.lines[lvl/10-1].Add(1)
	}
	if len(s.buf) == 0 {
		return nil
	}
	_, err := s.w.Write(s.buf)
	return err
}

// Flush implements pipeline.Flusher; lines are written per batch, so only
// the file needs closing.
func (s *Sink) Flush(context.Context) error { return s.Close() }

// Close closes the log file.
func (s *Sink) Close() error {
	if s.file != nil {
		return s.file.Close()
	}
	return nil
}

// eventLevel is the seed's mapping: forward DEBUG, audit INFO (WARNING on
// failure), everything else INFO.
func eventLevel(ev *pipeline.Event) int {
	switch ev.Kind {
	case pipeline.KindForward:
		return levelDebug
	case pipeline.KindAudit:
		if !ev.Audit.Success {
			return levelWarning
		}
	}
	return levelInfo
}

func eventType(ev *pipeline.Event) string {
	switch ev.Kind {
	case pipeline.KindForward:
		return "forward"
	case pipeline.KindRetrieval:
		return "retrieval"
	case pipeline.KindAudit:
		return "audit"
	case pipeline.KindEvent:
		return ev.Other.Name
	}
	return ev.Kind.String()
}

// format appends one line. JSON keys in the seed's order (timestamp,
// level, logger, message, event_type, event_source, event_timestamp, data)
// plus producer; timestamps are RFC 3339 with milliseconds and zone. Lines
// are built with append calls: retrieval and audit lines are formatted on
// the sink's goroutine at their full rate.
func (s *Sink) format(ev *pipeline.Event, lvl int) {
	b := s.buf
	producer := ""
	if ev.Producer != nil {
		producer = ev.Producer.Name
	}
	now := s.opts.Now()
	if !s.json {
		b = now.AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
		b = append(b, " ["...)
		b = append(b, levelName(lvl)...)
		b = append(b, "] "...)
		// The rest comes from the producer: escaped, so it stays one line.
		sc := append(s.scratch[:0], eventType(ev)...)
		sc = append(sc, ": "...)
		sc = appendMessage(sc, ev)
		sc = append(sc, " producer="...)
		sc = append(sc, producer...)
		s.scratch = sc
		b = appendText(b, sc)
		s.buf = append(b, '\n')
		return
	}
	b = append(b, `{"timestamp":"`...)
	b = now.AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","level":"`...)
	b = append(b, levelName(lvl)...)
	b = append(b, `","logger":"aga.observability","message":`...)
	s.scratch = appendMessage(s.scratch[:0], ev)
	b = appendJSONString(b, s.scratch)
	b = append(b, `,"event_type":`...)
	b = appendJSONString(b, []byte(eventType(ev)))
	b = append(b, `,"event_source":"aga-core","event_timestamp":`...)
	b = pyfmt.AppendFloat(b, float64(ev.TimeNs)/1e9)
	b = append(b, `,"data":`...)
	b = s.appendData(b, ev)
	b = append(b, `,"producer":`...)
	b = appendJSONString(b, []byte(producer))
	s.buf = append(b, "}\n"...)
}

// appendData appends the event's data as aga-core emitted it (JSON bodies
// compacted to one line, see appendRawJSON).
func (s *Sink) appendData(b []byte, ev *pipeline.Event) []byte {
	switch ev.Kind {
	case pipeline.KindForward:
		f := &ev.Forward
		b = append(b, `{"aga_applied":`...)
		b = strconv.AppendBool(b, f.Applied())
		if f.Has(shm.FwdHasGate) {
			b = appendJSONFloat(append(b, `,"gate_mean":`...), f.GateMean)
		}
		if f.Has(shm.FwdHasEntropy) {
			b = appendJSONFloat(append(b, `,"entropy_mean":`...), f.EntropyMean)
		}
		if f.Has(shm.FwdHasLayer) {
			b = strconv.AppendInt(append(b, `,"layer_idx":`...), int64(f.Layer), 10)
		}
		if f.Has(shm.FwdHasLatency) {
			b = appendJSONFloat(append(b, `,"latency_us":`...), f.LatencyUs)
		}
		return append(b, '}')
	case pipeline.KindRetrieval:
		r := ev.Retrieval
		b = append(b, '{')
		for _, fld := range [...]struct {
			key string
			bit uint32
			v   int32
		}{{"layer_idx", shm.RetHasLayer, r.Layer}, {"results_count", shm.RetHasResults, r.ResultsCount},
			{"injected_count", shm.RetHasInjected, r.InjectedCount}, {"budget_remaining", shm.RetHasBudget, r.BudgetRemaining}} {
			if r.Fields&fld.bit != 0 {
				b = append(b, '"')
				b = append(b, fld.key...)
				b = strconv.AppendInt(append(b, `":`...), int64(fld.v), 10)
				b = append(b, ',')
			}
		}
		b = append(b, `"ids":[`...)
		for i, id := range r.IDs {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, []byte(id))
		}
		b = append(b, `],"scores":[`...)
		for i, v := range r.Scores {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONFloat(b, v)
		}
		return append(b, "]}"...)
	case pipeline.KindAudit:
		return appendRawJSON(b, ev.Audit.Raw, &s.compact)
	case pipeline.KindEvent:
		return appendRawJSON(b, ev.Other.Data, &s.compact)
	}
	return append(b, "{}"...)
}

// appendJSONFloat renders a float the way Python's json module does
// (always with a decimal point or exponent), non-finite values as null.
func appendJSONFloat(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	return pyfmt.AppendFloat(b, v)
}

// Register exports the sink's counters.
func (s *Sink) Register(reg interface{ MustRegister(...prometheus.Collector) }) {
	lines := prometheus.NewDesc("agaobs_log_lines_total", "Event log lines written, by level.", []string{"level"}, nil)
	sampled := prometheus.NewDesc("agaobs_log_sampled_out_total", "Forward events not logged because of log_forward_sample_rate.", nil, nil)
	reg.MustRegister(collectorFunc{
		describe: func(ch chan<- *prometheus.Desc) { ch <- lines; ch <- sampled },
		collect: func(ch chan<- prometheus.Metric) {
			for i := range s.lines {
				ch <- prometheus.MustNewConstMetric(lines, prometheus.CounterValue, float64(s.lines[i].Load()), levelName((i+1)*10))
			}
			ch <- prometheus.MustNewConstMetric(sampled, prometheus.CounterValue, float64(s.sampledOut.Load()))
		},
	})
}

type collectorFunc struct {
	describe func(chan<- *prometheus.Desc)
	collect  func(chan<- prometheus.Metric)
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) { c.describe(ch) }
func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
