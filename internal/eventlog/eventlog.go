package eventlog

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/agaobs/agaobs/internal/jsonfloat"
	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/pyfmt"
	"github.com/agaobs/agaobs/internal/selfmetrics"
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
	opts    Options
	level   int
	json    bool
	w       io.Writer
	file    *lumberjack.Logger
	buf     []byte
	scratch []byte
	compact bytes.Buffer // appendRawJSON's
	fwdSeen uint64
	// The last timestamp formatted, by millisecond and zone: a batch's
	// lines mostly share it (appendTime).
	tsMilli int64
	tsLoc   *time.Location
	tsText  []byte
	// The last producer's name, escaped for the line's format: a batch's
	// events mostly share their producer, whose name never changes.
	prod     *pipeline.Producer
	prodText []byte
	// Counted per batch, published once per Write.
	batchLines [5]uint64
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
	var sampled uint64
	// One clock reading per batch, taken at its first line: a batch is
	// formatted in well under the timestamp's millisecond, and the
	// reading cost about 50 ns a line (2 % of the pipeline, perf).
	var now time.Time
	for i := range batch {
		ev := &batch[i]
		lvl := eventLevel(ev)
		if lvl < s.level {
			continue // never formatted
		}
		if ev.Kind == pipeline.KindForward {
			s.fwdSeen++
			if (s.fwdSeen-1)%uint64(s.opts.ForwardSampleRate) != 0 {
				sampled++
				continue
			}
		}
		if now.IsZero() {
			now = s.opts.Now()
		}
		s.format(ev, lvl, now)
		s.batchLines[lvl/10-1]++
	}
	s.publishCounts(sampled)
	if len(s.buf) == 0 {
		return nil
	}
	if _, err := s.w.Write(s.buf); err != nil {
		return fmt.Errorf("write event log lines: %w", err)
	}
	return nil
}

// publishCounts adds the batch's counts to the exported counters: one
// atomic add per counter and batch rather than per line.
func (s *Sink) publishCounts(sampled uint64) {
	for i, n := range s.batchLines {
		if n > 0 {
			s.lines[i].Add(n)
			s.batchLines[i] = 0
		}
	}
	if sampled > 0 {
		s.sampledOut.Add(sampled)
	}
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

// eventLevel is the seed's mapping (pipeline.Event.SeedLevel).
func eventLevel(ev *pipeline.Event) int { return int(ev.SeedLevel()) }

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

// jsonLinePrefix is the constant text between a JSON line's timestamp and
// its message, by level index.
var jsonLinePrefix = [5]string{
	`","level":"DEBUG","logger":"aga.observability","message":`,
	`","level":"INFO","logger":"aga.observability","message":`,
	`","level":"WARNING","logger":"aga.observability","message":`,
	`","level":"ERROR","logger":"aga.observability","message":`,
	`","level":"CRITICAL","logger":"aga.observability","message":`,
}

// textLinePrefix is the constant text after a text line's timestamp.
var textLinePrefix = [5]string{" [DEBUG] ", " [INFO] ", " [WARNING] ", " [ERROR] ", " [CRITICAL] "}

// safeMessage reports the kinds whose message and event type the sink
// makes of numbers and constants only: printable, valid UTF-8 with
// nothing either format escapes (TestSafeMessages), so it is appended as
// is.
func safeMessage(k pipeline.Kind) bool {
	return k == pipeline.KindForward || k == pipeline.KindRetrieval
}

// format appends one line. JSON keys in the seed's order (timestamp,
// level, logger, message, event_type, event_source, event_timestamp, data)
// plus producer; timestamps are RFC 3339 with milliseconds and zone. Lines
// are built with append calls: retrieval and audit lines are formatted on
// the sink's goroutine at their full rate.
func (s *Sink) format(ev *pipeline.Event, lvl int, now time.Time) {
	if s.json {
		s.buf = s.formatJSON(s.buf, ev, lvl, now)
	} else {
		s.buf = s.formatText(s.buf, ev, lvl, now)
	}
}

// formatText appends a text line: everything after the level comes from
// the producer and is escaped (appendText), so it stays one line.
// appendText escapes rune by rune, and every part here ends the line or is
// followed by ASCII text (which no rune decodes across), so the parts are
// escaped one by one exactly as the whole line was.
func (s *Sink) formatText(b []byte, ev *pipeline.Event, lvl int, now time.Time) []byte {
	b = s.appendTime(b, now)
	b = append(b, textLinePrefix[lvl/10-1]...)
	if safeMessage(ev.Kind) {
		b = append(b, eventType(ev)...)
		b = append(b, ": "...)
		b = appendMessage(b, ev)
	} else {
		sc := append(s.scratch[:0], eventType(ev)...)
		sc = append(sc, ": "...)
		sc = appendMessage(sc, ev)
		s.scratch = sc
		b = appendText(b, sc)
	}
	b = append(b, " producer="...)
	b = append(b, s.producerText(ev.Producer)...)
	return append(b, '\n')
}

// formatJSON appends a JSON line.
func (s *Sink) formatJSON(b []byte, ev *pipeline.Event, lvl int, now time.Time) []byte {
	b = append(b, `{"timestamp":"`...)
	b = s.appendTime(b, now)
	b = append(b, jsonLinePrefix[lvl/10-1]...)
	if safeMessage(ev.Kind) {
		b = append(b, '"')
		b = appendMessage(b, ev)
		b = append(b, `","event_type":"`...)
		b = append(b, eventType(ev)...)
		b = append(b, '"')
	} else {
		s.scratch = appendMessage(s.scratch[:0], ev)
		b = appendJSONString(b, s.scratch)
		b = append(b, `,"event_type":`...)
		b = appendJSONString(b, []byte(eventType(ev)))
	}
	b = append(b, `,"event_source":"aga-core","event_timestamp":`...)
	b = pyfmt.AppendUnixSeconds(b, ev.TimeNs)
	b = append(b, `,"data":`...)
	b = s.appendData(b, ev)
	b = append(b, `,"producer":`...)
	b = append(b, s.producerText(ev.Producer)...)
	return append(b, "}\n"...)
}

// producerText returns p's name escaped for the line's format, reusing the
// last one's (a Producer's name never changes).
func (s *Sink) producerText(p *pipeline.Producer) []byte {
	if p != s.prod || s.prodText == nil {
		name := ""
		if p != nil {
			name = p.Name
		}
		s.prod = p
		if s.json {
			s.prodText = appendJSONString(s.prodText[:0], []byte(name))
		} else {
			s.prodText = appendText(s.prodText[:0], []byte(name))
		}
	}
	return s.prodText
}

// appendTime appends now as RFC 3339 with milliseconds and zone, reusing
// the last text when the millisecond and the zone are the same.
func (s *Sink) appendTime(b []byte, now time.Time) []byte {
	ms, loc := now.UnixMilli(), now.Location()
	if ms != s.tsMilli || loc != s.tsLoc || s.tsText == nil {
		s.tsMilli, s.tsLoc = ms, loc
		s.tsText = now.AppendFormat(s.tsText[:0], "2006-01-02T15:04:05.000Z07:00")
	}
	return append(b, s.tsText...)
}

// appendCount appends `"key":v,` when the retrieval carried the count.
func appendCount(b []byte, key string, v int32, ok bool) []byte {
	if !ok {
		return b
	}
	b = append(b, key...)
	return append(strconv.AppendInt(b, int64(v), 10), ',')
}

// appendData appends the event's data as aga-core emitted it (JSON bodies
// compacted to one line, see appendRawJSON).
func (s *Sink) appendData(b []byte, ev *pipeline.Event) []byte {
	switch ev.Kind {
	case pipeline.KindForward:
		return appendForwardData(b, &ev.Forward)
	case pipeline.KindRetrieval:
		return appendRetrievalData(b, ev.Retrieval)
	case pipeline.KindAudit:
		return appendRawJSON(b, ev.Audit.Raw, &s.compact)
	case pipeline.KindEvent:
		return appendRawJSON(b, ev.Other.Data, &s.compact)
	}
	return append(b, "{}"...)
}

func appendForwardData(b []byte, f *pipeline.Forward) []byte {
	if f.Applied() {
		b = append(b, `{"aga_applied":true`...)
	} else {
		b = append(b, `{"aga_applied":false`...)
	}
	if v, ok := f.GateMean(); ok {
		b = appendJSONFloat(append(b, `,"gate_mean":`...), v)
	}
	if v, ok := f.EntropyMean(); ok {
		b = appendJSONFloat(append(b, `,"entropy_mean":`...), v)
	}
	if v, ok := f.LayerIdx(); ok {
		b = strconv.AppendInt(append(b, `,"layer_idx":`...), int64(v), 10)
	}
	if v, ok := f.LatencyUs(); ok {
		b = appendJSONFloat(append(b, `,"latency_us":`...), v)
	}
	return append(b, '}')
}

func appendRetrievalData(b []byte, r *pipeline.Retrieval) []byte {
	b = append(b, '{')
	v, ok := r.LayerIdx()
	b = appendCount(b, `"layer_idx":`, v, ok)
	v, ok = r.ResultsCount()
	b = appendCount(b, `"results_count":`, v, ok)
	v, ok = r.InjectedCount()
	b = appendCount(b, `"injected_count":`, v, ok)
	v, ok = r.BudgetRemaining()
	b = appendCount(b, `"budget_remaining":`, v, ok)
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
}

// appendJSONFloat renders a finite float the way Python's json module
// does (always with a decimal point or exponent); a non-finite one as
// package jsonfloat says, where Python wrote invalid JSON (NaN, Infinity).
func appendJSONFloat(b []byte, v float64) []byte {
	if out, ok := jsonfloat.AppendNonFinite(b, v); ok {
		return out
	}
	return pyfmt.AppendFloat(b, v)
}

// Collector exports the sink's counters.
func (s *Sink) Collector() selfmetrics.Collector {
	c := &collector{s: s}
	c.lines = c.fams.Counter("agaobs_log_lines_total", "Event log lines written, by level.", "level")
	c.sampled = c.fams.Counter("agaobs_log_sampled_out_total", "Forward events not logged because of log_forward_sample_rate.")
	return c
}

type collector struct {
	s              *Sink
	lines, sampled *prometheus.Desc
	fams           selfmetrics.Families
}

func (c *collector) Describe() []selfmetrics.Family { return c.fams }

func (c *collector) Update(ch chan<- prometheus.Metric) error {
	for i := range c.s.lines {
		ch <- prometheus.MustNewConstMetric(c.lines, prometheus.CounterValue, float64(c.s.lines[i].Load()), levelName((i+1)*10))
	}
	ch <- prometheus.MustNewConstMetric(c.sampled, prometheus.CounterValue, float64(c.s.sampledOut.Load()))
	return nil
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
