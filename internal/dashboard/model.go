package dashboard

// The subset of Grafana's dashboard JSON model (schemaVersion 39, Grafana
// 10.x/11.x) that this dashboard uses. Field order follows Grafana's own
// export (alphabetical), so the committed files diff like exported ones.

// Dashboard is the bare dashboard model (file provisioning, UI import).
type Dashboard struct {
	Inputs               []Input     `json:"__inputs"`
	Requires             []Require   `json:"__requires"`
	Annotations          Annotations `json:"annotations"`
	Description          string      `json:"description"`
	Editable             bool        `json:"editable"`
	FiscalYearStartMonth int         `json:"fiscalYearStartMonth"`
	GraphTooltip         int         `json:"graphTooltip"`
	ID                   *int        `json:"id"` // always null: Grafana assigns it
	Links                []Link      `json:"links"`
	Panels               []Panel     `json:"panels"`
	Refresh              string      `json:"refresh"`
	SchemaVersion        int         `json:"schemaVersion"`
	Tags                 []string    `json:"tags"`
	Templating           Templating  `json:"templating"`
	Time                 TimeRange   `json:"time"`
	Timepicker           struct{}    `json:"timepicker"`
	Timezone             string      `json:"timezone"`
	Title                string      `json:"title"`
	UID                  string      `json:"uid"`
	Version              int         `json:"version"`
}

// apiWrapper is the body of Grafana's POST /api/dashboards/db.
type apiWrapper struct {
	Dashboard *Dashboard `json:"dashboard"`
	Overwrite bool       `json:"overwrite"`
}

// Link is a dashboard link (shown under the title): here to the other
// dashboard of the pair, keeping the time range and the variables.
type Link struct {
	AsDropdown  bool     `json:"asDropdown"`
	Icon        string   `json:"icon"`
	IncludeVars bool     `json:"includeVars"`
	KeepTime    bool     `json:"keepTime"`
	Tags        []string `json:"tags"`
	TargetBlank bool     `json:"targetBlank"`
	Title       string   `json:"title"`
	Tooltip     string   `json:"tooltip"`
	Type        string   `json:"type"` // link
	URL         string   `json:"url"`
}

// Input is an import-time placeholder: the UI import asks for a value and
// replaces ${<Name>} throughout the JSON.
type Input struct {
	Description string `json:"description"`
	Label       string `json:"label"`
	Name        string `json:"name"`
	PluginID    string `json:"pluginId"`
	PluginName  string `json:"pluginName"`
	Type        string `json:"type"`
}

// Require names a Grafana version, datasource or panel plugin the
// dashboard needs.
type Require struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Type    string `json:"type"`
	Version string `json:"version"`
}

// Annotations holds the built-in "Annotations & Alerts" entry.
type Annotations struct {
	List []Annotation `json:"list"`
}

// Annotation is one annotation query.
type Annotation struct {
	BuiltIn    int           `json:"builtIn"`
	Datasource DatasourceRef `json:"datasource"`
	Enable     bool          `json:"enable"`
	Hide       bool          `json:"hide"`
	IconColor  string        `json:"iconColor"`
	Name       string        `json:"name"`
	Type       string        `json:"type"`
}

// DatasourceRef points at a datasource by type and uid (here always the
// $datasource variable).
type DatasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// TimeRange is the default time range.
type TimeRange struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Templating holds the template variables.
type Templating struct {
	List []Variable `json:"list"`
}

// Variable is a template variable (datasource or query).
type Variable struct {
	AllValue    string         `json:"allValue,omitempty"`
	Current     Current        `json:"current"`
	Datasource  *DatasourceRef `json:"datasource,omitempty"`
	Definition  string         `json:"definition,omitempty"`
	Description string         `json:"description"`
	Hide        int            `json:"hide"`
	IncludeAll  bool           `json:"includeAll"`
	Label       string         `json:"label"`
	Multi       bool           `json:"multi"`
	Name        string         `json:"name"`
	Options     []struct{}     `json:"options"`
	Query       any            `json:"query"` // string (datasource) or VariableQuery
	Refresh     int            `json:"refresh"`
	Regex       string         `json:"regex"`
	SkipURLSync bool           `json:"skipUrlSync"`
	Sort        int            `json:"sort"`
	Type        string         `json:"type"`
}

// Current is a variable's selected value: strings for single-value
// variables, lists for multi-value ones.
type Current struct {
	Selected bool `json:"selected"`
	Text     any  `json:"text"`
	Value    any  `json:"value"`
}

// VariableQuery is the Prometheus datasource's variable query model.
type VariableQuery struct {
	QryType int    `json:"qryType"` // 1: label values
	Query   string `json:"query"`
	RefID   string `json:"refId"`
}

// Panel is a row or a visualization.
type Panel struct {
	Collapsed       *bool            `json:"collapsed,omitempty"` // rows
	Datasource      *DatasourceRef   `json:"datasource,omitempty"`
	Description     string           `json:"description,omitempty"`
	FieldConfig     *FieldConfig     `json:"fieldConfig,omitempty"`
	GridPos         GridPos          `json:"gridPos"`
	ID              int              `json:"id"`
	Options         any              `json:"options,omitempty"` // StatOptions, TimeseriesOptions, …
	Targets         []Target         `json:"targets,omitempty"`
	Title           string           `json:"title"`
	Transformations []Transformation `json:"transformations,omitempty"`
	Type            string           `json:"type"`
}

// GridPos places a panel on the 24-column grid.
type GridPos struct {
	H int `json:"h"`
	W int `json:"w"`
	X int `json:"x"`
	Y int `json:"y"`
}

// Target is one Prometheus query of a panel.
type Target struct {
	Datasource   DatasourceRef `json:"datasource"`
	EditorMode   string        `json:"editorMode"`
	Expr         string        `json:"expr"`
	Format       string        `json:"format"` // time_series, heatmap, table
	Instant      bool          `json:"instant"`
	LegendFormat string        `json:"legendFormat"`
	Range        bool          `json:"range"`
	RefID        string        `json:"refId"`
}

// FieldConfig sets units, thresholds and mappings.
type FieldConfig struct {
	Defaults  FieldDefaults   `json:"defaults"`
	Overrides []FieldOverride `json:"overrides"`
}

// FieldOverride sets properties of the fields its matcher selects.
type FieldOverride struct {
	Matcher    Matcher    `json:"matcher"`
	Properties []Property `json:"properties"`
}

// Matcher selects fields (id byName: the field named Options).
type Matcher struct {
	ID      string `json:"id"`
	Options string `json:"options"`
}

// Property is one field option: unit, mappings, thresholds, links, …
type Property struct {
	ID    string `json:"id"`
	Value any    `json:"value"`
}

// DataLink is a link from a field's values: ${__data.fields.<name>} in
// its URL reads another field of the same row.
type DataLink struct {
	TargetBlank bool   `json:"targetBlank"`
	Title       string `json:"title"`
	URL         string `json:"url"`
}

// FieldDefaults are the field options every series of a panel gets.
type FieldDefaults struct {
	Color      FieldColor     `json:"color"`
	Custom     any            `json:"custom,omitempty"` // TimeseriesCustom, HeatmapCustom, TableCustom
	Decimals   *int           `json:"decimals,omitempty"`
	Mappings   []ValueMapping `json:"mappings"`
	Max        *float64       `json:"max,omitempty"`
	Min        *float64       `json:"min,omitempty"`
	Thresholds Thresholds     `json:"thresholds"`
	Unit       string         `json:"unit"`
}

// FieldColor selects how series are coloured.
type FieldColor struct {
	Mode string `json:"mode"` // palette-classic, thresholds
}

// Thresholds colour values by absolute steps.
type Thresholds struct {
	Mode  string `json:"mode"`
	Steps []Step `json:"steps"`
}

// Step is one threshold; the first has a null value (the base colour).
type Step struct {
	Color string   `json:"color"`
	Value *float64 `json:"value"`
}

// ValueMapping maps exact values to text and colour.
type ValueMapping struct {
	Options map[string]MappingResult `json:"options"`
	Type    string                   `json:"type"` // value
}

// MappingResult is what a mapped value shows.
type MappingResult struct {
	Color string `json:"color"`
	Index int    `json:"index"`
	Text  string `json:"text"`
}

// TimeseriesCustom are the time series panel's field options.
type TimeseriesCustom struct {
	AxisSoftMin       *float64        `json:"axisSoftMin,omitempty"`
	DrawStyle         string          `json:"drawStyle"`
	FillOpacity       int             `json:"fillOpacity"`
	LineInterpolation string          `json:"lineInterpolation"`
	LineWidth         int             `json:"lineWidth"`
	ShowPoints        string          `json:"showPoints"`
	SpanNulls         bool            `json:"spanNulls"`
	Stacking          Stacking        `json:"stacking"`
	ThresholdsStyle   ThresholdsStyle `json:"thresholdsStyle"`
}

// Stacking stacks series (mode none or normal).
type Stacking struct {
	Group string `json:"group"`
	Mode  string `json:"mode"`
}

// ThresholdsStyle draws thresholds on a time series (off, dashed, …).
type ThresholdsStyle struct {
	Mode string `json:"mode"`
}

// HeatmapCustom are the heatmap panel's field options.
type HeatmapCustom struct {
	ScaleDistribution ScaleDistribution `json:"scaleDistribution"`
}

// ScaleDistribution is an axis or colour scale.
type ScaleDistribution struct {
	Type string `json:"type"`
}

// TableCustom are the table panel's field options.
type TableCustom struct {
	Align       string `json:"align"`
	CellOptions struct {
		Type string `json:"type"`
	} `json:"cellOptions"`
	Filterable bool `json:"filterable"`
}

// StatOptions are the stat panel's options.
type StatOptions struct {
	ColorMode     string        `json:"colorMode"`
	GraphMode     string        `json:"graphMode"`
	JustifyMode   string        `json:"justifyMode"`
	Orientation   string        `json:"orientation"`
	ReduceOptions ReduceOptions `json:"reduceOptions"`
	ShowPercent   bool          `json:"showPercentChange"`
	TextMode      string        `json:"textMode"`
	WideLayout    bool          `json:"wideLayout"`
}

// ReduceOptions reduce a series to the value a stat shows.
type ReduceOptions struct {
	Calcs  []string `json:"calcs"`
	Fields string   `json:"fields"`
	Values bool     `json:"values"`
}

// TimeseriesOptions are the time series panel's options.
type TimeseriesOptions struct {
	Legend  Legend  `json:"legend"`
	Tooltip Tooltip `json:"tooltip"`
}

// Legend places the legend and its calculations.
type Legend struct {
	Calcs       []string `json:"calcs"`
	DisplayMode string   `json:"displayMode"`
	Placement   string   `json:"placement"`
	ShowLegend  bool     `json:"showLegend"`
}

// Tooltip shows one or all series.
type Tooltip struct {
	Mode string `json:"mode"`
	Sort string `json:"sort"`
}

// HeatmapOptions are the heatmap panel's options for pre-bucketed
// (histogram) data.
type HeatmapOptions struct {
	Calculate    bool          `json:"calculate"`
	CellGap      int           `json:"cellGap"`
	Color        HeatmapColor  `json:"color"`
	FilterValues FilterValues  `json:"filterValues"`
	Legend       HeatmapLegend `json:"legend"`
	RowsFrame    RowsFrame     `json:"rowsFrame"`
	Tooltip      HeatmapTip    `json:"tooltip"`
	YAxis        HeatmapAxis   `json:"yAxis"`
}

// HeatmapColor is the heatmap's colour scheme.
type HeatmapColor struct {
	Exponent float64 `json:"exponent"`
	Fill     string  `json:"fill"`
	Mode     string  `json:"mode"`
	Reverse  bool    `json:"reverse"`
	Scale    string  `json:"scale"`
	Scheme   string  `json:"scheme"`
	Steps    int     `json:"steps"`
}

// FilterValues hides cells at or below Le (empty buckets).
type FilterValues struct {
	Le float64 `json:"le"`
}

// HeatmapLegend shows the colour scale.
type HeatmapLegend struct {
	Show bool `json:"show"`
}

// RowsFrame says how bucket bounds are read (le: upper bounds).
type RowsFrame struct {
	Layout string `json:"layout"`
}

// HeatmapTip is the heatmap tooltip.
type HeatmapTip struct {
	Mode       string `json:"mode"`
	YHistogram bool   `json:"yHistogram"`
}

// HeatmapAxis is the bucket axis.
type HeatmapAxis struct {
	AxisPlacement string `json:"axisPlacement"`
	Unit          string `json:"unit"`
}

// TableOptions are the table panel's options.
type TableOptions struct {
	CellHeight string        `json:"cellHeight"`
	ShowHeader bool          `json:"showHeader"`
	SortBy     []TableSortBy `json:"sortBy"`
}

// TableSortBy sorts a table by a column.
type TableSortBy struct {
	Desc        bool   `json:"desc"`
	DisplayName string `json:"displayName"`
}

// Transformation reshapes query results: merge (several instant queries
// into one table, rows joined on their common labels), then organize.
type Transformation struct {
	ID      string `json:"id"`
	Options any    `json:"options"` // OrganizeOptions, struct{} (merge)
}

// OrganizeOptions hide, order and rename table columns.
type OrganizeOptions struct {
	ExcludeByName map[string]bool   `json:"excludeByName"`
	IndexByName   map[string]int    `json:"indexByName"`
	RenameByName  map[string]string `json:"renameByName"`
}
