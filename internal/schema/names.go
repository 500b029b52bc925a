package schema

import "fmt"

// Names resolves the exposed names and units of the AGA-domain families for
// one prefix and naming: the exporter, the dashboard and the rule
// generator read the same names through it.
type Names struct {
	prefix string
	naming Naming
	fams   map[string]Family
}

// NewNames returns the resolver for prefix and naming. It fails when one
// of the required family keys does not exist, so a renamed family breaks
// the generator instead of yielding queries over series that never exist.
func NewNames(prefix string, naming Naming, required ...string) (Names, error) {
	n := Names{prefix: prefix, naming: naming, fams: map[string]Family{}}
	for _, f := range Families() {
		n.fams[f.Key] = f
	}
	for _, key := range required {
		if _, ok := n.fams[key]; !ok {
			return Names{}, fmt.Errorf("metrics family %q not found", key)
		}
	}
	return n, nil
}

// Prefix is the AGA-domain prefix the names carry.
func (n Names) Prefix() string { return n.prefix }

// Naming is the naming the names follow.
func (n Names) Naming() Naming { return n.naming }

// Name is the exposed name of family key.
func (n Names) Name(key string) string {
	f := n.fams[key]
	return f.Name(n.prefix, n.naming)
}

// Divisor converts family key's compat units to its exposed units: the
// family's Divisor in conventional naming (1e6 for µs → s), else 1.
func (n Names) Divisor(key string) float64 {
	if f := n.fams[key]; n.naming == Conventional && f.Divisor != 0 {
		return f.Divisor
	}
	return 1
}

// Family is the definition of family key (the zero Family if unknown).
func (n Names) Family(key string) Family { return n.fams[key] }
