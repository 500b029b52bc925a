package selfmetrics

import (
	"errors"
	"fmt"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Check gathers s once in a pedantic registry (which rejects a metric
// whose descriptor was not described) and returns an error for every
// metric outside the described families: another name, type or label.
// A metric may leave out labels of its family (agaobs_gpu_up carries its
// reason only when 0).
func Check(s *Set) error {
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(s); err != nil {
		return err
	}
	mfs, err := reg.Gather()
	if err != nil {
		return err
	}
	fams := map[string]Family{}
	for _, f := range s.Families() {
		fams[f.Name] = f
	}
	var errs []error
	for _, mf := range mfs {
		f, ok := fams[mf.GetName()]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: not described", mf.GetName()))
			continue
		}
		if t := typeOf(mf.GetType()); t != f.Type {
			errs = append(errs, fmt.Errorf("%s: a %s, described as a %s", mf.GetName(), t, f.Type))
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if !slices.Contains(f.Labels, l.GetName()) {
					errs = append(errs, fmt.Errorf("%s: label %q not described", mf.GetName(), l.GetName()))
				}
			}
		}
	}
	return errors.Join(errs...)
}

func typeOf(t dto.MetricType) Type {
	switch t {
	case dto.MetricType_COUNTER:
		return Counter
	case dto.MetricType_GAUGE:
		return Gauge
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		return Histogram
	}
	return 0
}
