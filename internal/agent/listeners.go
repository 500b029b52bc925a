package agent

import (
	"fmt"
	"net/http"
	"time"

	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/web"
	toolkitweb "github.com/prometheus/exporter-toolkit/web"
)

// webOptions are the connection bounds of every HTTP listener:
// web_idle_timeout, and web_max_connections lowered when RLIMIT_NOFILE
// cannot hold that many connections on each listener and still leave
// descriptors for the rings and stores (a flood would otherwise end in
// EMFILE for the whole agent). Neither is hot-reloadable.
func (a *Agent) webOptions(cfg config.Config) web.Options {
	n := 0
	for _, on := range []bool{cfg.HealthEnabled, cfg.PrometheusEnabled, cfg.AdminListenAddress != ""} {
		if on {
			n++
		}
	}
	capN, nofile := web.FitMaxConnections(cfg.WebMaxConnections, n)
	if capN < cfg.WebMaxConnections {
		a.log.Warn("web_max_connections lowered to fit the open-file limit", "web_max_connections", cfg.WebMaxConnections,
			"using", capN, "listeners", n, "rlimit_nofile", nofile)
	}
	return web.Options{MaxConnections: capN, IdleTimeout: time.Duration(cfg.WebIdleTimeout)}
}

// docsURL is where the landing pages point for the agent's documentation.
const docsURL = "https://github.com/agaobs/agaobs/blob/main/docs/agent.md"

// withLanding serves exporter-toolkit's landing page at "/" (any method,
// as the metrics listener's page always did) and hands every other path
// to next. links are the listener's own endpoints, absolute paths.
func withLanding(name, description, version string, links []toolkitweb.LandingLinks, next http.Handler) (http.Handler, error) {
	page, err := toolkitweb.NewLandingPage(toolkitweb.LandingConfig{
		Name:        name,
		Description: description,
		Version:     version,
		Links:       links,
		// Absolute links would get the route prefix: the docs go here.
		ExtraHTML: `<div>Documentation: <a href="` + docsURL + `">` + docsURL + `</a></div>`,
		Profiling: "false", // pprof is on the admin listener only
	})
	if err != nil {
		return nil, fmt.Errorf("%s landing page: %w", name, err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			page.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	}), nil
}
