package fleet_test

import (
	"strings"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/dashboard"
)

// checkDashboards runs every query of the node and the fleet dashboard
// against the fleet's Prometheus once per node, as Grafana would with
// $node set to that node: each parses, returns only that node's series,
// and returns data for some node (GPU panels for node C, whose fixture
// has the GPUs; eBPF panels for none, since the agents run without eBPF).
func (f *fleet) checkDashboards(t *testing.T) {
	t.Helper()
	for _, opts := range []dashboard.Options{{}, {Fleet: true}} {
		for _, q := range dashboard.Queries(opts) {
			withData := 0
			for _, nd := range f.nodes {
				expr := strings.NewReplacer("$__rate_interval", "1m", "$__range", "1m", "$__interval", "15s",
					"$producer", ".*", "$layer", ".*", "$node", nd.name).Replace(q.Expr)
				res, err := queryAt(f.prom, expr, time.Time{})
				if err != nil {
					t.Errorf("%s / %s / %s: %v\n    %s", title(opts), q.Panel, q.RefID, err, expr)
					break
				}
				for _, s := range res {
					if n, ok := s.labels["node"]; ok && n != nd.name {
						t.Errorf("%s / %s / %s with node %s: a series of node %s\n    %s", title(opts), q.Panel, q.RefID, nd.name, n, expr)
						break
					}
				}
				if len(res) > 0 {
					withData++
				}
			}
			if withData == 0 && !strings.Contains(q.Expr, "agaobs_bpf_") {
				t.Errorf("%s / %s / %s: no data for any node\n    %s", title(opts), q.Panel, q.RefID, q.Expr)
			}
		}
	}
}

func title(o dashboard.Options) string {
	if o.Fleet {
		return "fleet dashboard"
	}
	return "node dashboard"
}
