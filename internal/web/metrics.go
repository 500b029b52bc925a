package web

import "github.com/prometheus/client_golang/prometheus"

// Collector exports the connection counters of the servers that servers
// returns (asked at every scrape, so listeners bound after registration
// are included).
func Collector(servers func() []*Server) prometheus.Collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("agaobs_web_"+name, help, []string{"listener"}, nil)
	}
	return &collector{servers: servers,
		open:     d("connections", "Connections the HTTP listener holds open now (idle keep-alive ones included)."),
		max:      d("max_connections", "The listener's connection cap: web_max_connections, lowered when RLIMIT_NOFILE is too small for it."),
		evicted:  d("connections_evicted_total", "Idle keep-alive (or silent) connections closed to admit a new one at the cap."),
		rejected: d("connections_rejected_total", "New connections closed because every connection stayed in a request for the accept wait (1 s)."),
		accErrs:  d("accept_errors_total", "Accepts that failed for want of file descriptors (EMFILE/ENFILE); net/http retries with back-off."),
	}
}

type collector struct {
	servers                               func() []*Server
	open, max, evicted, rejected, accErrs *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.open, c.max, c.evicted, c.rejected, c.accErrs} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.servers() {
		st := s.Stats()
		ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(st.Open), s.Name)
		ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(st.Max), s.Name)
		ch <- prometheus.MustNewConstMetric(c.evicted, prometheus.CounterValue, float64(st.Evicted), s.Name)
		ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.CounterValue, float64(st.Rejected), s.Name)
		ch <- prometheus.MustNewConstMetric(c.accErrs, prometheus.CounterValue, float64(st.AcceptErrors), s.Name)
	}
}

// ReferenceCollector is Collector over one listener named name that holds
// no connection, for the README's generated metrics reference.
func ReferenceCollector(name string) prometheus.Collector {
	s := &Server{Name: name, l: newLimitListener(nil, DefaultMaxConnections, 0, 0)}
	return Collector(func() []*Server { return []*Server{s} })
}
