package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/agaobs/agaobs/internal/selfmetrics"
)

// agaobs_producer_state tells a producer that died (AgaobsProducerDied)
// from one that closed, where agaobs_producer_up is 0 for both: dead when
// no ring is live and one is dead, live while any ring is live (a new
// incarnation took the name over), closed otherwise.
func TestProducerState(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rings []ringRow
		want  string // the state with value 1
	}{
		{"live", []ringRow{{Class: "hot", State: "live"}, {Class: "audit", State: "live"}}, "live"},
		{"closed", []ringRow{{Class: "hot", State: "closed"}, {Class: "audit", State: "closed"}}, "closed"},
		{"dead", []ringRow{{Class: "hot", State: "dead"}, {Class: "audit", State: "dead"}}, "dead"},
		{"dead beside closed", []ringRow{{Class: "hot", State: "closed"}, {Class: "audit", State: "dead"}}, "dead"},
		{"restarted after dying", []ringRow{{Class: "hot", State: "dead"}, {Class: "audit", State: "live"}}, "live"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.rings {
				tc.rings[i].Producer = "tp0"
			}
			s := selfmetrics.NewSet()
			s.Add("rings", NewRingsCollector(snapshotOf(tc.rings)))
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(s)
			var want strings.Builder
			want.WriteString("# HELP agaobs_producer_state 1 for the producer's state, 0 for the others: live (a ring is live), dead (none is, and one's process exited without closing it), closed.\n# TYPE agaobs_producer_state gauge\n")
			for _, st := range []string{"closed", "dead", "live"} {
				v := "0"
				if st == tc.want {
					v = "1"
				}
				want.WriteString(`agaobs_producer_state{producer="tp0",state="` + st + `"} ` + v + "\n")
			}
			if err := testutil.GatherAndCompare(reg, strings.NewReader(want.String()), "agaobs_producer_state"); err != nil {
				t.Error(err)
			}
		})
	}
}
