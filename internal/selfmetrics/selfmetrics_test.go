package selfmetrics

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fake describes one gauge and one counter; emit decides what Update sends.
type fake struct {
	fams           Families
	gauge, counter *prometheus.Desc
	emit           func(f *fake, ch chan<- prometheus.Metric) error
}

func newFake(emit func(f *fake, ch chan<- prometheus.Metric) error) *fake {
	f := &fake{emit: emit}
	f.gauge = f.fams.Gauge("test_level", "A level.", "a")
	f.counter = f.fams.Counter("test_total", "A counter.")
	return f
}

func (f *fake) Describe() []Family                       { return f.fams }
func (f *fake) Update(ch chan<- prometheus.Metric) error { return f.emit(f, ch) }

func described(f *fake, ch chan<- prometheus.Metric) error {
	ch <- prometheus.MustNewConstMetric(f.gauge, prometheus.GaugeValue, 1, "x")
	ch <- prometheus.MustNewConstMetric(f.counter, prometheus.CounterValue, 2)
	return nil
}

// Check accepts a collector that emits what it describes and fails one
// that does not, whichever way it strays.
func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		emit func(f *fake, ch chan<- prometheus.Metric) error
		want string // error substring; "" for none
	}{
		{"described", described, ""},
		{"nothing", func(*fake, chan<- prometheus.Metric) error { return nil }, ""},
		{"label left out", func(f *fake, ch chan<- prometheus.Metric) error {
			// Same family, no label: what agaobs_gpu_up does while up.
			ch <- prometheus.MustNewConstMetric(prometheus.NewDesc("test_level", "A level.", nil, nil), prometheus.GaugeValue, 1)
			return nil
		}, ""},
		{"undescribed family", func(f *fake, ch chan<- prometheus.Metric) error {
			ch <- prometheus.MustNewConstMetric(prometheus.NewDesc("test_other", "Other.", nil, nil), prometheus.GaugeValue, 1)
			return nil
		}, "unregistered descriptor"},
		{"undescribed label", func(f *fake, ch chan<- prometheus.Metric) error {
			ch <- prometheus.MustNewConstMetric(prometheus.NewDesc("test_level", "A level.", []string{"b"}, nil), prometheus.GaugeValue, 1, "y")
			return nil
		}, `label "b" not described`},
		{"wrong type", func(f *fake, ch chan<- prometheus.Metric) error {
			ch <- prometheus.MustNewConstMetric(f.counter, prometheus.GaugeValue, 1)
			return nil
		}, "a gauge, described as a counter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSet()
			s.Add("fake", newFake(tc.emit))
			err := Check(s)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Check: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Check = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// Every collector gets a success and a duration series; an error is a
// failure, ErrNoData is not, and neither fails the scrape.
func TestSetSuccess(t *testing.T) {
	s := NewSet()
	s.Add("ok", newFake(described))
	s.Add("broken", newFake(func(*fake, chan<- prometheus.Metric) error { return errors.New("boom") }))
	s.Add("empty", newFake(func(*fake, chan<- prometheus.Metric) error { return ErrNoData }))
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s)
	want := `# HELP agaobs_collector_success Whether the collector's last scrape succeeded (1) or failed (0).
# TYPE agaobs_collector_success gauge
agaobs_collector_success{collector="broken"} 0
agaobs_collector_success{collector="empty"} 1
agaobs_collector_success{collector="ok"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "agaobs_collector_success"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(s, "agaobs_collector_duration_seconds"); n != 3 {
		t.Errorf("%d duration series, want 3", n)
	}
	if problems, err := testutil.CollectAndLint(s); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// Describe sends the set's two descriptors and every collector's, so a
// registry rejects a collector whose family another one registered.
func TestSetDescribe(t *testing.T) {
	s := NewSet()
	s.Add("a", newFake(described))
	var names []string
	for _, f := range s.Families() {
		names = append(names, f.Name+" "+f.Type.String())
	}
	want := "agaobs_collector_success gauge,agaobs_collector_duration_seconds gauge,test_level gauge,test_total counter"
	if got := strings.Join(names, ","); got != want {
		t.Errorf("families %s, want %s", got, want)
	}
	ch := make(chan *prometheus.Desc, 10)
	s.Describe(ch)
	close(ch)
	if len(ch) != 4 {
		t.Errorf("%d descriptors, want 4", len(ch))
	}
	reg := prometheus.NewRegistry()
	clash := prometheus.NewGauge(prometheus.GaugeOpts{Name: "test_level", Help: "Another help."})
	reg.MustRegister(clash)
	s2 := NewSet()
	s2.Add("a", newFake(described))
	if err := reg.Register(s2); err == nil {
		t.Error("a set whose family clashes with a registered one was accepted")
	}
}

// A collector added twice, or after registration, would be emitted
// without the registry knowing its descriptors: Add panics.
func TestSetAddPanics(t *testing.T) {
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	s := NewSet()
	s.Add("a", newFake(described))
	mustPanic("second Add", func() { s.Add("a", newFake(described)) })
	prometheus.NewRegistry().MustRegister(s)
	mustPanic("Add after registration", func() { s.Add("b", newFake(described)) })
}
