package dashboard

// builder lays panels out on Grafana's 24-column grid, row by row, and
// numbers them in order.
type builder struct {
	panels []Panel
	id     int
	x, y   int // next free cell on the current line
	lineH  int // height of the current line's tallest panel
}

const gridWidth = 24

// row starts a (non-collapsed) row on a new line.
func (b *builder) row(title string) {
	b.newLine()
	b.id++
	b.panels = append(b.panels, Panel{Collapsed: ptr(false), GridPos: GridPos{H: 1, W: gridWidth, X: 0, Y: b.y}, ID: b.id, Title: title, Type: "row"})
	b.y++
}

// add places p w columns wide and h high, wrapping to a new line when the
// current one is full.
func (b *builder) add(w, h int, p Panel) {
	if b.x+w > gridWidth {
		b.newLine()
	}
	b.id++
	p.ID = b.id
	p.GridPos = GridPos{H: h, W: w, X: b.x, Y: b.y}
	ds := promDatasource()
	p.Datasource = &ds
	for i := range p.Targets {
		p.Targets[i].RefID = string(rune('A' + i))
	}
	b.panels = append(b.panels, p)
	b.x += w
	b.lineH = max(b.lineH, h)
}

// newLine moves below the current line's tallest panel.
func (b *builder) newLine() {
	b.y += b.lineH
	b.x, b.lineH = 0, 0
}

// promDatasource is the $datasource variable.
func promDatasource() DatasourceRef { return DatasourceRef{Type: "prometheus", UID: "${datasource}"} }

func ptr[T any](v T) *T { return &v }

// series is a range query drawn as time series.
func series(expr, legend string) Target {
	return Target{Datasource: promDatasource(), EditorMode: "code", Expr: expr, Format: "time_series", LegendFormat: legend, Range: true}
}

// buckets is a range query of histogram bucket rates for a heatmap.
func buckets(expr string) Target {
	return Target{Datasource: promDatasource(), EditorMode: "code", Expr: expr, Format: "heatmap", LegendFormat: "{{le}}", Range: true}
}

// instantTable is an instant query rendered as a table.
func instantTable(expr string) Target {
	return Target{Datasource: promDatasource(), EditorMode: "code", Expr: expr, Format: "table", Instant: true}
}

// steps builds absolute thresholds: a base colour, then steps from at.
func steps(base string, more ...Step) Thresholds {
	return Thresholds{Mode: "absolute", Steps: append([]Step{{Color: base}}, more...)}
}

// at is the threshold step from v upwards.
func at(v float64, color string) Step { return Step{Color: color, Value: &v} }

// tsSpec describes a time series panel.
type tsSpec struct {
	title, desc, unit string
	min, max          *float64
	thresholds        Thresholds // drawn as dashed lines when more than the base
	bars, stack       bool
	targets           []Target
}

// timeseries is a line (or bar) chart.
func timeseries(s tsSpec) Panel {
	custom := TimeseriesCustom{DrawStyle: "line", FillOpacity: 10, LineInterpolation: "smooth", LineWidth: 1, ShowPoints: "never",
		Stacking: Stacking{Group: "A", Mode: "none"}, ThresholdsStyle: ThresholdsStyle{Mode: "off"}}
	if s.bars {
		custom.DrawStyle, custom.FillOpacity = "bars", 80
	}
	if s.stack {
		custom.Stacking.Mode = "normal"
	}
	th := s.thresholds
	if len(th.Steps) == 0 {
		th = steps("green")
	} else {
		custom.ThresholdsStyle.Mode = "dashed"
	}
	if s.min == nil {
		custom.AxisSoftMin = ptr(0.0)
	}
	return Panel{Description: s.desc, Title: s.title, Type: "timeseries", Targets: s.targets,
		FieldConfig: &FieldConfig{Defaults: FieldDefaults{Color: FieldColor{Mode: "palette-classic"}, Custom: custom, Mappings: []ValueMapping{},
			Min: s.min, Max: s.max, Thresholds: th, Unit: s.unit}, Overrides: []FieldOverride{}},
		Options: TimeseriesOptions{Legend: Legend{Calcs: []string{"mean", "max", "lastNotNull"}, DisplayMode: "table", Placement: "bottom", ShowLegend: true},
			Tooltip: Tooltip{Mode: "multi", Sort: "desc"}}}
}

// statSpec describes a stat panel.
type statSpec struct {
	title, desc, unit string
	thresholds        Thresholds
	mappings          []ValueMapping
	decimals          *int
	targets           []Target
}

// stat shows the last value of each series, coloured by thresholds (or
// by value mappings when it has them).
func stat(s statSpec) Panel {
	th := s.thresholds
	if len(th.Steps) == 0 {
		th = steps("green")
	}
	maps := s.mappings
	if maps == nil {
		maps = []ValueMapping{}
	}
	colorMode := "value"
	if len(s.mappings) > 0 {
		colorMode = "background"
	}
	return Panel{Description: s.desc, Title: s.title, Type: "stat", Targets: s.targets,
		FieldConfig: &FieldConfig{Defaults: FieldDefaults{Color: FieldColor{Mode: "thresholds"}, Decimals: s.decimals, Mappings: maps, Thresholds: th, Unit: s.unit},
			Overrides: []FieldOverride{}},
		Options: StatOptions{ColorMode: colorMode, GraphMode: "area", JustifyMode: "auto", Orientation: "auto",
			ReduceOptions: ReduceOptions{Calcs: []string{"lastNotNull"}, Fields: "", Values: false}, TextMode: "auto", WideLayout: true}}
}

// heatmap shows pre-bucketed histogram rates (the seed's calculate: false,
// Oranges).
func heatmap(title, desc, unit string, t Target) Panel {
	return Panel{Description: desc, Title: title, Type: "heatmap", Targets: []Target{t},
		FieldConfig: &FieldConfig{Defaults: FieldDefaults{Color: FieldColor{Mode: "palette-classic"}, Custom: HeatmapCustom{ScaleDistribution{Type: "linear"}},
			Mappings: []ValueMapping{}, Thresholds: steps("green"), Unit: "short"}, Overrides: []FieldOverride{}},
		Options: HeatmapOptions{Calculate: false, CellGap: 1,
			Color:        HeatmapColor{Exponent: 0.5, Fill: "dark-orange", Mode: "scheme", Scale: "exponential", Scheme: "Oranges", Steps: 64},
			FilterValues: FilterValues{Le: 1e-9}, Legend: HeatmapLegend{Show: true}, RowsFrame: RowsFrame{Layout: "le"},
			Tooltip: HeatmapTip{Mode: "single", YHistogram: true}, YAxis: HeatmapAxis{AxisPlacement: "left", Unit: unit}}}
}

// table shows an instant query's labels as columns.
func table(title, desc string, t Target, hide []string, order []string) Panel {
	var custom TableCustom
	custom.Align, custom.CellOptions.Type = "auto", "auto"
	org := OrganizeOptions{ExcludeByName: map[string]bool{}, IndexByName: map[string]int{}, RenameByName: map[string]string{}}
	for _, h := range hide {
		org.ExcludeByName[h] = true
	}
	for i, o := range order {
		org.IndexByName[o] = i
	}
	return Panel{Description: desc, Title: title, Type: "table", Targets: []Target{t},
		FieldConfig: &FieldConfig{Defaults: FieldDefaults{Color: FieldColor{Mode: "thresholds"}, Custom: custom, Mappings: []ValueMapping{},
			Thresholds: steps("green"), Unit: "short"}, Overrides: []FieldOverride{}},
		Options:         TableOptions{CellHeight: "sm", ShowHeader: true, SortBy: []TableSortBy{{Desc: false, DisplayName: order[0]}}},
		Transformations: []Transformation{{ID: "organize", Options: org}}}
}

// valueMap maps exact values to text and colour, in the given order.
func valueMap(pairs ...[3]string) []ValueMapping {
	opts := map[string]MappingResult{}
	for i, p := range pairs {
		opts[p[0]] = MappingResult{Text: p[1], Color: p[2], Index: i}
	}
	return []ValueMapping{{Options: opts, Type: "value"}}
}

// column is one instant query of a merged table and how its value shows.
type column struct {
	name, desc, unit string // display name, header tooltip, unit
	expr             string
	hide             bool // only its labels are wanted (an info series)
	mappings         []ValueMapping
	thresholds       Thresholds // colour the value when set
	decimals         *int
}

// valueField is the name Grafana gives the value of query i of n in table
// format: "Value" alone, else "Value #<refId>" (refIds as builder.add
// assigns them).
func valueField(i, n int) string {
	if n == 1 {
		return "Value"
	}
	return "Value #" + string(rune('A'+i))
}

// mergedTable shows instant queries as one table: Grafana's merge joins
// their rows on the fields all of them have (Time and the labels they
// share), organize puts the lead columns first and hides Time and the
// hidden columns; overrides name, describe and colour each value column
// and put links on the lead columns. sortBy is a column's name, sorted
// descending.
func mergedTable(title, desc string, lead []string, links map[string][]DataLink, cols []column, sortBy string) Panel {
	var custom TableCustom
	custom.Align, custom.CellOptions.Type = "auto", "auto"
	org := OrganizeOptions{ExcludeByName: map[string]bool{"Time": true}, IndexByName: map[string]int{}, RenameByName: map[string]string{}}
	for i, l := range lead {
		org.IndexByName[l] = i
	}
	overrides := []FieldOverride{}
	for _, l := range lead {
		if ls, ok := links[l]; ok {
			overrides = append(overrides, FieldOverride{Matcher: Matcher{ID: "byName", Options: l}, Properties: []Property{{ID: "links", Value: ls}}})
		}
	}
	var targets []Target
	for i, c := range cols {
		targets = append(targets, instantTable(c.expr))
		field := valueField(i, len(cols))
		if c.hide {
			org.ExcludeByName[field] = true
			continue
		}
		org.IndexByName[field] = len(org.IndexByName)
		props := []Property{{ID: "displayName", Value: c.name}, {ID: "description", Value: c.desc}, {ID: "unit", Value: c.unit}}
		if c.decimals != nil {
			props = append(props, Property{ID: "decimals", Value: *c.decimals})
		}
		if len(c.mappings) > 0 {
			props = append(props, Property{ID: "mappings", Value: c.mappings})
		}
		if len(c.thresholds.Steps) > 0 {
			props = append(props, Property{ID: "thresholds", Value: c.thresholds})
		}
		if len(c.mappings) > 0 || len(c.thresholds.Steps) > 0 {
			props = append(props, Property{ID: "custom.cellOptions", Value: map[string]string{"type": "color-text"}})
		}
		overrides = append(overrides, FieldOverride{Matcher: Matcher{ID: "byName", Options: field}, Properties: props})
	}
	return Panel{Description: desc, Title: title, Type: "table", Targets: targets,
		FieldConfig: &FieldConfig{Defaults: FieldDefaults{Color: FieldColor{Mode: "thresholds"}, Custom: custom, Mappings: []ValueMapping{},
			Thresholds: steps("green"), Unit: "short"}, Overrides: overrides},
		Options:         TableOptions{CellHeight: "sm", ShowHeader: true, SortBy: []TableSortBy{{Desc: true, DisplayName: sortBy}}},
		Transformations: []Transformation{{ID: "merge", Options: struct{}{}}, {ID: "organize", Options: org}}}
}
