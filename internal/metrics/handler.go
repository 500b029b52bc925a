package metrics

import (
	"log/slog"
	"net/http"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// Registry holds the agent's self-metrics (agaobs_*, go_*, process_*) with
// the const labels applied, and merges them with the AGA families.
type Registry struct {
	reg      *prometheus.Registry
	wrapped  prometheus.Registerer
	exporter *Exporter
	Self     *Collectors
}

// NewRegistry returns a registry with the Go, process and build-info
// collectors and an empty set of self collectors, plus the exporter's own
// counters when exporter is not nil.
func NewRegistry(constLabels map[string]string, exporter *Exporter) *Registry {
	reg := prometheus.NewRegistry()
	// Const label values come from flags and the environment too: keep
	// the wrapping registerer from panicking on invalid UTF-8.
	cl := make(prometheus.Labels, len(constLabels))
	for k, v := range constLabels {
		cl[k] = LabelValue(v)
	}
	r := &Registry{reg: reg, wrapped: prometheus.WrapRegistererWith(cl, reg), exporter: exporter, Self: NewCollectors()}
	r.wrapped.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("agaobs"),
		r.Self,
	)
	if exporter != nil {
		r.wrapped.MustRegister(exporter.Collector())
	}
	return r
}

// MustRegister adds a collector (with the const labels).
func (r *Registry) MustRegister(c ...prometheus.Collector) { r.wrapped.MustRegister(c...) }

// Gather implements prometheus.Gatherer: self-metrics and AGA families,
// sorted by name. The AGA families skip the registry's per-metric checks
// (Exporter.Gather explains why), which keeps large scrapes cheap; their
// label values pass through LabelValue when their label pairs are built.
func (r *Registry) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := r.reg.Gather()
	if r.exporter != nil {
		aga, _ := r.exporter.Gather()
		mfs = append(mfs, aga...)
		sort.Slice(mfs, func(i, j int) bool { return mfs[i].GetName() < mfs[j].GetName() })
	}
	return mfs, err
}

// Handler serves /metrics (text, OpenMetrics or protobuf, gzip when asked)
// and a small landing page.
func (r *Registry) Handler(log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(r, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		ErrorLog:            slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		MaxRequestsInFlight: 4,
		EnableOpenMetrics:   true,
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/" {
			http.NotFound(w, req)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<html><head><title>agaobs-agent</title></head><body><h1>agaobs-agent</h1><p><a href="/metrics">Metrics</a></p></body></html>`))
	})
	return mux
}
