package health

import (
	"sort"
	"time"
)

// Transition is a change of one component's status between two Evaluates.
type Transition struct {
	Component string
	From, To  Status // From "" when the component first appears; To "" when it disappears
	Fields    map[string]any
	At        time.Time
}

// diff lists the transitions from prev to cur in component order. Fields
// are the new component's, or the last seen for one that disappeared.
func diff(prev, cur map[string]Component, at time.Time) []Transition {
	names := make([]string, 0, len(cur))
	for n := range cur {
		names = append(names, n)
	}
	for n := range prev {
		if _, ok := cur[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var ts []Transition
	for _, n := range names {
		p, had := prev[n]
		c, has := cur[n]
		switch {
		case !had:
			ts = append(ts, Transition{Component: n, To: c.Status, Fields: c.Fields, At: at})
		case !has:
			ts = append(ts, Transition{Component: n, From: p.Status, Fields: p.Fields, At: at})
		case p.Status != c.Status:
			ts = append(ts, Transition{Component: n, From: p.Status, To: c.Status, Fields: c.Fields, At: at})
		}
	}
	return ts
}
