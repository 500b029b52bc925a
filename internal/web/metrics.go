package web

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/agaobs/agaobs/internal/selfmetrics"
)

// Collector exports the connection counters of the servers that servers
// returns (asked at every scrape, so listeners bound after registration
// are included).
func Collector(servers func() []*Server) selfmetrics.Collector {
	c := &collector{servers: servers}
	const p, l = "agaobs_web_", "listener"
	f := &c.fams
	c.open = f.Gauge(p+"connections", "Connections the HTTP listener holds open now (idle keep-alive ones included).", l)
	c.max = f.Gauge(p+"max_connections", "The listener's connection cap: web_max_connections, lowered when RLIMIT_NOFILE is too small for it.", l)
	c.evicted = f.Counter(p+"connections_evicted_total", "Idle keep-alive (or silent) connections closed to admit a new one at the cap.", l)
	c.rejected = f.Counter(p+"connections_rejected_total", "New connections closed because every connection stayed in a request for the accept wait (1 s).", l)
	c.accErrs = f.Counter(p+"accept_errors_total", "Accepts that failed for want of file descriptors (EMFILE/ENFILE); net/http retries with back-off.", l)
	return c
}

type collector struct {
	servers                               func() []*Server
	open, max, evicted, rejected, accErrs *prometheus.Desc
	fams                                  selfmetrics.Families
}

func (c *collector) Describe() []selfmetrics.Family { return c.fams }

func (c *collector) Update(ch chan<- prometheus.Metric) error {
	for _, s := range c.servers() {
		st := s.Stats()
		ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(st.Open), s.Name)
		ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(st.Max), s.Name)
		ch <- prometheus.MustNewConstMetric(c.evicted, prometheus.CounterValue, float64(st.Evicted), s.Name)
		ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.CounterValue, float64(st.Rejected), s.Name)
		ch <- prometheus.MustNewConstMetric(c.accErrs, prometheus.CounterValue, float64(st.AcceptErrors), s.Name)
	}
	return nil
}
