package testutil

import dto "github.com/prometheus/client_model/go"

// FindSeries returns the first series of family name whose labels include
// every pair of want, or nil.
func FindSeries(mfs []*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.Metric {
			for k, v := range want {
				found := false
				for _, l := range m.Label {
					if l.GetName() == k && l.GetValue() == v {
						found = true
						break
					}
				}
				if !found {
					continue next
				}
			}
			return m
		}
	}
	return nil
}
