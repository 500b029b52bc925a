package agent

import (
	"time"

	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/web"
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
