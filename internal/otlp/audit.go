package otlp

import (
	"context"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
)

// AuditRecord is one stored audit record as the audit log export needs it.
type AuditRecord struct {
	Seq       uint64
	Time      time.Time
	Kind      string // aga (a producer's record), agent, gap, checkpoint
	Producer  string
	Operation string
	Success   bool
	Hash      string
	// JSON is the stored record as the audit store encodes it.
	JSON []byte
}

// AuditSource reads the audit store in chain order.
type AuditSource interface {
	// After returns up to limit records with a sequence number above seq.
	After(seq uint64, limit int) ([]AuditRecord, error)
}

// Cursor keeps the sequence number of the last audit record the collector
// acknowledged (the state file), so a restarted agent resumes there.
type Cursor interface {
	Load() (uint64, error)
	Save(seq uint64) error
}

// auditBatch is the most audit records one export sends.
const auditBatch = 256

// auditIdle is how often the tail looks for new records; retries back off
// from it to auditMaxBackoff while the collector fails.
const (
	auditIdle       = time.Second
	auditMaxBackoff = 30 * time.Second
)

// tailAudit exports the audit store from the cursor on, at least once:
// the cursor advances only after the collector accepted a batch, so an
// outage or a restart resends, never skips.
func (e *Exporter) tailAudit(ctx context.Context) {
	st := e.stats[signalAudit]
	var cursor uint64
	if e.opts.Cursor != nil {
		c, err := e.opts.Cursor.Load()
		if err != nil {
			e.log.Warn("otlp: audit cursor unreadable; exporting the audit trail from the start", "err", err)
		}
		cursor = c
	}
	e.auditCursor.Store(cursor)
	wait := time.Duration(0)
	var lastLog time.Time
	for {
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-e.auditWake:
			case <-time.After(wait):
			}
		} else if ctx.Err() != nil {
			return
		}
		recs, err := e.opts.Audit.After(cursor, auditBatch)
		if err != nil {
			e.log.Warn("otlp: reading the audit store", "err", err)
			wait = auditIdle
			continue
		}
		if len(recs) == 0 {
			wait = auditIdle
			continue
		}
		batch := e.auditLogRecords(recs)
		start := time.Now()
		xctx, cancel := context.WithTimeout(ctx, e.exportTimeout())
		err = e.logExp.Export(xctx, batch)
		cancel()
		st.exported(len(batch), time.Since(start), err)
		if err != nil {
			// Not dropped: the same records are read again.
			if time.Since(lastLog) > time.Minute {
				lastLog = time.Now()
				e.log.Warn("otlp: audit log export failed; retrying from the cursor", "seq", cursor, "err", err)
			}
			wait = min(max(2*wait, auditIdle), auditMaxBackoff)
			continue
		}
		cursor = recs[len(recs)-1].Seq
		e.auditCursor.Store(cursor)
		if e.opts.Cursor != nil {
			if err := e.opts.Cursor.Save(cursor); err != nil {
				e.log.Warn("otlp: saving the audit cursor", "err", err)
			}
		}
		wait = 0
		if len(recs) < auditBatch {
			wait = auditIdle
		}
	}
}

// auditLogRecords builds the log records of a batch, each under its
// producer's resource (the agent's for the agent's own records).
func (e *Exporter) auditLogRecords(recs []AuditRecord) []sdklog.Record {
	out := make([]sdklog.Record, 0, len(recs))
	ctx := context.WithValue(context.Background(), captureKey{}, &out)
	for i := range recs {
		a := &recs[i]
		var r otellog.Record
		r.SetTimestamp(a.Time)
		r.SetObservedTimestamp(a.Time)
		r.SetEventName("agaobs.audit_record")
		sev := otellog.SeverityInfo
		if !a.Success {
			sev = otellog.SeverityWarn
		}
		r.SetSeverity(sev)
		r.SetSeverityText(map[bool]string{true: "INFO", false: "WARNING"}[a.Success])
		// The stored JSON is valid UTF-8 (encoding/json writes it so),
		// whole: it is bounded by the store's record size.
		r.SetBody(attribute.StringValue(strings.ToValidUTF8(string(a.JSON), "\uFFFD")))
		r.AddAttributes(attribute.Int64("aga.audit.seq", int64(a.Seq)), attribute.String("aga.audit.hash", clean(a.Hash)),
			attribute.String("aga.audit.operation", clean(a.Operation)), attribute.Bool("aga.audit.success", a.Success),
			attribute.String("aga.audit.kind", clean(a.Kind)), attribute.String("aga.producer", clean(a.Producer)),
			attribute.String("log.source", "audit"))
		e.auditLogger(a.Producer).Emit(ctx, r)
	}
	return out
}

// auditLogger is the logger of an audit record's producer: the live
// producer's, else one for the name alone, else the agent's.
func (e *Exporter) auditLogger(producer string) otellog.Logger {
	e.mu.Lock()
	defer e.mu.Unlock()
	key := producer
	if key == "" {
		key = "\x00agent"
	}
	if st := e.producers[key]; st != nil && st.lp != nil {
		return st.logger
	}
	if st := e.orphans[key]; st != nil {
		return st.logger
	}
	res := agentResource(e.opts.Node, e.opts.Version)
	if producer != "" {
		res = orphanResource(producer, e.opts.Node)
	}
	lp := sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(&logProcessor{e: e}))
	st := &producerState{res: res, lp: lp, logger: lp.Logger(scope)}
	if len(e.orphans) >= maxOrphans {
		clear(e.orphans) // bounded: rebuilt on demand
	}
	e.orphans[key] = st
	return st.logger
}

// maxOrphans bounds the loggers kept for audit records of producers no
// longer tracked.
const maxOrphans = 256
