package agent

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/agaobs/agaobs/internal/alerting"
	"github.com/agaobs/agaobs/internal/alerting/anomaly"
	"github.com/agaobs/agaobs/internal/audit"
	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/rings"
	"github.com/agaobs/agaobs/internal/web"
)

// RingsResponse is the body of GET /api/v1/rings; `agaobs-agent rings`
// reads it when an agent serves the same ring directory.
type RingsResponse struct {
	RingDir string           `json:"ring_dir"`
	Rings   []rings.RingInfo `json:"rings"`
}

// StatusResponse is the body of GET /api/v1/status.
type StatusResponse struct {
	Version       string                       `json:"version"`
	RingDir       string                       `json:"ring_dir"`
	StartedAt     time.Time                    `json:"started_at"`
	LastPass      time.Time                    `json:"last_pass"`
	Sinks         []pipeline.SinkStats         `json:"sinks"`
	EventCounts   map[string]map[string]uint64 `json:"event_counts"`
	ForwardP50Sec float64                      `json:"event_to_sink_p50_seconds"`
	ForwardP99Sec float64                      `json:"event_to_sink_p99_seconds"`
	Audit         AuditHeadResponse            `json:"audit"`
}

func (a *Agent) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/rings", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, RingsResponse{RingDir: a.Config().RingDir, Rings: a.consumer.Rings()})
	})
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) {
		lat := a.counter.Latency()
		writeJSON(w, StatusResponse{
			Version: a.opts.Version, RingDir: a.Config().RingDir, StartedAt: a.started,
			LastPass: a.consumer.LastPass(), Sinks: a.disp.Stats(), EventCounts: a.counter.Counts(),
			ForwardP50Sec: lat.Quantile(0.5).Seconds(), ForwardP99Sec: lat.Quantile(0.99).Seconds(),
			Audit: a.auditHead(),
		})
	})
	mux.HandleFunc("GET /api/v1/alerts", func(w http.ResponseWriter, r *http.Request) {
		if a.alerts == nil {
			http.Error(w, "alerting is disabled (alert_enabled: false)", http.StatusNotFound)
			return
		}
		q := r.URL.Query()
		since := 0.0
		limit, err := alertsLimit(q.Get("limit"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if v := q.Get("since"); v != "" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				http.Error(w, "since: not epoch seconds", http.StatusBadRequest)
				return
			}
			since = f
		}
		active, history := a.alerts.Alerts(q.Get("severity"), limit, since)
		writeJSON(w, AlertsResponse{Active: active, History: history})
	})
	mux.HandleFunc("GET /api/v1/anomalies", func(w http.ResponseWriter, r *http.Request) {
		if a.alerts == nil {
			http.Error(w, "alerting is disabled (alert_enabled: false)", http.StatusNotFound)
			return
		}
		q := r.URL.Query()
		f := anomaly.Filter{Producer: q.Get("producer"), Signal: q.Get("signal")}
		switch q.Get("layers") {
		case "", "anomalous":
		case "all":
			f.AllLayers = true
		default:
			http.Error(w, "layers: want all or anomalous", http.StatusBadRequest)
			return
		}
		if f.Signal != "" {
			if _, ok := anomaly.ParseSignal(f.Signal); !ok {
				http.Error(w, "signal: unknown (docs/anomaly.md lists the signals)", http.StatusBadRequest)
				return
			}
		}
		writeJSON(w, a.alerts.Anomalies(f))
	})
	mux.HandleFunc("GET /api/v1/audit", func(w http.ResponseWriter, r *http.Request) {
		f, err := audit.FilterFromValues(r.URL.Query(), time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		// Bounded pages: more than MaxPageLimit (or 0, all) is served as
		// MaxPageLimit records and a next_cursor, which clients follow.
		if f.Limit == 0 || f.Limit > audit.MaxPageLimit {
			f.Limit = audit.MaxPageLimit
		}
		// Streamed, one chunk of records in memory at a time; not
		// indented: records keep the exact bytes they were hashed in.
		w.Header().Set("Content-Type", "application/json")
		if started, err := audit.StreamPage(a.auditStore, f, w); err != nil {
			if !started {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			// A 200 is on its way: cut the reply so the client sees an
			// error, not a well-formed short page.
			a.log.Warn("audit query failed mid-reply", "err", err)
			panic(http.ErrAbortHandler)
		}
	})
	mux.HandleFunc("GET /api/v1/audit/head", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, a.auditHead())
	})
	mux.HandleFunc("GET /api/v1/audit/verify", func(w http.ResponseWriter, r *http.Request) {
		var witness *audit.Head
		if v := r.URL.Query().Get("expect_head"); v != "" {
			h, err := audit.ParseHead(v)
			if err != nil {
				http.Error(w, "expect_head: "+err.Error(), http.StatusBadRequest)
				return
			}
			witness = &h
		}
		rep, err := a.auditStore.Verify(witness)
		if err != nil && !errors.Is(err, audit.ErrTampered) {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, AuditVerifyResponse{Report: rep})
	})
	mux.HandleFunc("GET /api/v1/rules", func(w http.ResponseWriter, r *http.Request) {
		if a.alerts == nil {
			http.Error(w, "alerting is disabled (alert_enabled: false)", http.StatusNotFound)
			return
		}
		writeJSON(w, map[string]any{"rules": a.alerts.Rules()})
	})
	registerPprof(mux)
	if a.live != nil {
		ui := a.live.Handler()
		mux.Handle("/ui/", ui)
		mux.Handle("/ui", ui)
	}
	return mux
}

// registerPprof serves net/http/pprof under /debug/pprof/ on mux, and only
// there: the package's init also registers on http.DefaultServeMux, which
// no listener serves. profile and trace run for ?seconds= (30 s by
// default), so they are web.LongLived: that clears the listener's read
// deadline, which would otherwise cancel them, and pprof then sets the
// write deadline to the listener's write timeout plus ?seconds=.
func registerPprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.Handle("/debug/pprof/profile", web.LongLived(http.HandlerFunc(pprof.Profile)))
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.Handle("/debug/pprof/trace", web.LongLived(http.HandlerFunc(pprof.Trace)))
}

// AuditHeadResponse is the body of GET /api/v1/audit/head: the chain head
// for an off-node witness, and where and how well the store is writing.
type AuditHeadResponse struct {
	Size      uint64 `json:"size"`
	Hash      string `json:"hash"`
	Head      string `json:"head"` // SIZE:HASH, as audit verify --expect-head takes it
	Backend   string `json:"backend"`
	Path      string `json:"path"` // absolute; "" for the memory backend
	Writable  bool   `json:"writable"`
	LastError string `json:"last_error,omitempty"`
	Pending   int64  `json:"pending"` // received, not yet durable
	Bytes     int64  `json:"store_bytes"`
}

func (a *Agent) auditHead() AuditHeadResponse {
	h, _ := a.auditStore.Head()
	ok, lastErr, pending := a.audit.Status()
	return AuditHeadResponse{Size: h.Size, Hash: h.Hash, Head: h.String(), Backend: a.Config().AuditStorageBackend,
		Path: a.auditPath, Writable: ok, LastError: lastErr, Pending: pending, Bytes: a.auditStore.Size()}
}

// AuditVerifyResponse is the body of GET /api/v1/audit/verify
// (expect_head=SIZE:HASH optional); report.ok is false when tampered.
type AuditVerifyResponse struct {
	Report audit.VerifyReport `json:"report"`
}

// maxAlertsLimit caps the history of GET /api/v1/alerts: limit 0 (all) or
// more is served as this many of the most recent entries.
const maxAlertsLimit = 10000

// alertsLimit parses the limit of GET /api/v1/alerts: 100 when absent, and
// 0 (all) or more than maxAlertsLimit served as maxAlertsLimit.
func alertsLimit(v string) (int, error) {
	if v == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, errors.New("limit: not a non-negative integer")
	}
	if n == 0 || n > maxAlertsLimit {
		return maxAlertsLimit, nil
	}
	return n, nil
}

// AlertsResponse is the body of GET /api/v1/alerts: active and recently
// resolved alerts, and the notification history (filters: severity,
// limit (default 100; 0 or more than 10 000: 10 000), since (epoch
// seconds, inclusive)).
type AlertsResponse struct {
	Active  []alerting.AlertView    `json:"active"`
	History []alerting.HistoryEntry `json:"history"`
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
