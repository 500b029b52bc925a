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

	"github.com/agaobs/agaobs/internal/schema"
	"github.com/agaobs/agaobs/internal/selfmetrics"
)

// Registry holds the agent's self-metrics (agaobs_*, go_*, process_*) with
// the const labels applied, and merges them with the AGA families.
type Registry struct {
	reg      *prometheus.Registry
	exporter *Exporter
	Self     *selfmetrics.Set
}

// NewRegistry returns a registry with the Go, process and build-info
// collectors and self, every agaobs_* source (nil: none), plus the
// exporter's own counters, added to self as "exporter", when exporter is
// not nil. The registry checks self's descriptors now: add to it before.
func NewRegistry(constLabels map[string]string, exporter *Exporter, self *selfmetrics.Set) *Registry {
	reg := prometheus.NewRegistry()
	// Const label values come from flags and the environment too: keep
	// the wrapping registerer from panicking on invalid UTF-8.
	cl := make(prometheus.Labels, len(constLabels))
	for k, v := range constLabels {
		cl[k] = schema.LabelValue(v)
	}
	if self == nil {
		self = selfmetrics.NewSet()
	}
	if exporter != nil {
		self.Add("exporter", exporter.Collector())
	}
	prometheus.WrapRegistererWith(cl, reg).MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("agaobs"),
		self,
	)
	return &Registry{reg: reg, exporter: exporter, Self: self}
}

// Gather implements prometheus.Gatherer: self-metrics and AGA families,
// sorted by name. The AGA families skip the registry's per-metric checks
// (Exporter.Gather explains why), which keeps large scrapes cheap; their
// label values pass through schema.LabelValue when their label pairs are built.
func (r *Registry) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := r.reg.Gather()
	if r.exporter != nil {
		aga, _ := r.exporter.Gather()
		mfs = append(mfs, aga...)
		sort.Slice(mfs, func(i, j int) bool { return mfs[i].GetName() < mfs[j].GetName() })
	}
	return mfs, err
}

// maxScrapesInFlight bounds concurrent /metrics requests; more are
// answered 503, as promhttp's MaxRequestsInFlight does.
const maxScrapesInFlight = 4

// Handler serves /metrics (text, OpenMetrics or protobuf, gzip when asked)
// and a small landing page. Text and OpenMetrics scrapes take the AGA
// families from the exporter's render cache (render.go, scrape.go).
func (r *Registry) Handler(log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	mux.Handle("/metrics", &scrapeHandler{
		r: r,
		// What the fast path does not serve, client_golang serves from
		// Gather; scrapeHandler holds the in-flight limit for both.
		fallback: promhttp.HandlerFor(r, promhttp.HandlerOpts{
			ErrorHandling:     promhttp.ContinueOnError,
			ErrorLog:          errLog,
			EnableOpenMetrics: true,
		}),
		errLog:   errLog,
		inFlight: make(chan struct{}, maxScrapesInFlight),
	})
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
