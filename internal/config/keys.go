package config

import (
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// envPrefix is the prefix of every configuration environment variable.
const envPrefix = "AGAOBS_"

// Key describes one configuration key.
type Key struct {
	// Name is the key in the file, e.g. "prometheus_port".
	Name string
	// Flag is the flag name without the leading dashes, e.g. "prometheus-port";
	// empty for file-only keys.
	Flag string
	// Env is the environment variable, e.g. "AGAOBS_PROMETHEUS_PORT"; empty
	// for file-only keys.
	Env string
	// Type is the value type: bool, string, int, float, duration, []int,
	// map[string]string, or for file-only keys []AlertRule, []SLO,
	// map[string]bool, HTTPClientConfig (prometheus/common's).
	Type string
	// Default is the default value in flag syntax (lists "a,b", maps
	// "k=v,k2=v2"); empty for an empty string, list or map.
	Default string
	// Help says what the key is for.
	Help string
	// FileOnly is true for structured keys that only the file can set.
	FileOnly bool
	// Area is the part of the agent the key configures (see areaOf); the
	// CLI's help groups the flags by it.
	Area string
}

// Keys returns the metadata of every key, in the order of the Config struct.
func Keys() []Key {
	def := reflect.ValueOf(Default())
	var keys []Key
	for _, f := range fieldsOf(def.Type()) {
		k := Key{
			Name:     f.name,
			Type:     typeName(f.typ),
			Help:     f.help,
			FileOnly: f.fileOnly,
			Area:     areaOf(f.name, f.help),
		}
		if !f.fileOnly {
			k.Flag = flagName(f.name)
			k.Env = envName(f.name)
			k.Default = formatText(def.Field(f.index))
		}
		keys = append(keys, k)
	}
	return keys
}

// areaOf names the part of the agent a key configures, from the "Used by
// ..." sentence its help ends with (one source for the docs and the CLI).
func areaOf(name, help string) string {
	users := []struct{ phrase, area string }{
		{"Used by the ring consumer.", "Ring consumer"},
		{"Used by the Prometheus exporter.", "Prometheus exporter"},
		{"Used by the event log sink.", "Event log"},
		{"Used by the audit store.", "Audit store"},
		{"Used by the alert engine.", "Alerting"},
		{"Used by the health endpoint.", "Health"},
		{"Used by the GPU collector.", "GPU"},
		{"Used by the eBPF probes.", "eBPF probes"},
		{"Used by the OTLP exporter.", "OTLP export"},
		{"Used by the HTTP listeners.", "HTTP listeners"},
		{"Used by the admin listener.", "HTTP listeners"},
		{"Used by the live view.", "Live view"},
		{"Used by the demo producers.", "Producers"},
		{"Producer-side", "Producers"},
	}
	for _, u := range users {
		if strings.Contains(help, u.phrase) {
			return u.area
		}
	}
	switch name {
	case "enabled":
		return "Compatibility"
	case "slos":
		return "Alerting"
	}
	// The agent itself: node identity, its logger, state store, sink
	// queues, GOMAXPROCS.
	return "Agent"
}

// fieldInfo describes one field of a configuration struct.
type fieldInfo struct {
	name     string // yaml key
	index    int    // field index in the struct
	typ      reflect.Type
	help     string
	fileOnly bool // flag:"-": no flag, no environment variable
	required bool // required:"true": the file must name the key
}

// fieldsOf returns the fields of struct type t that carry a yaml tag, in
// declaration order.
func fieldsOf(t reflect.Type) []fieldInfo {
	var out []fieldInfo
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !sf.IsExported() {
			continue
		}
		out = append(out, fieldInfo{
			name:     name,
			index:    i,
			typ:      sf.Type,
			help:     sf.Tag.Get("help"),
			fileOnly: sf.Tag.Get("flag") == "-",
			required: sf.Tag.Get("required") == "true",
		})
	}
	return out
}

// lookupField returns the field of fields named name.
func lookupField(fields []fieldInfo, name string) (fieldInfo, bool) {
	for _, f := range fields {
		if f.name == name {
			return f, true
		}
	}
	return fieldInfo{}, false
}

// flagName returns the flag name of key name: prometheus_port -> prometheus-port.
func flagName(name string) string { return strings.ReplaceAll(name, "_", "-") }

// envName returns the environment variable of key name:
// prometheus_port -> AGAOBS_PROMETHEUS_PORT.
func envName(name string) string { return envPrefix + strings.ToUpper(name) }

// isDuration reports whether t is Duration.
func isDuration(t reflect.Type) bool { return t == reflect.TypeFor[Duration]() }

// typeName returns the type of a key as documented in Key.Type.
func typeName(t reflect.Type) string {
	if isDuration(t) {
		return "duration"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "bool"
	case reflect.String:
		return "string"
	case reflect.Int, reflect.Int64:
		return "int"
	case reflect.Float64:
		return "float"
	case reflect.Slice:
		return "[]" + typeName(t.Elem())
	case reflect.Map:
		return "map[" + typeName(t.Key()) + "]" + typeName(t.Elem())
	case reflect.Pointer:
		return typeName(t.Elem())
	default:
		return t.Name()
	}
}

// unitOf returns the unit of a numeric key from its name ("" if none).
func unitOf(key string) string {
	if i := strings.LastIndexAny(key, ".]"); i >= 0 {
		key = key[i+1:]
	}
	switch {
	case key == "audit_flush_interval" || strings.HasSuffix(key, "_seconds"):
		return "seconds"
	case strings.HasSuffix(key, "_us"):
		return "microseconds"
	case strings.HasSuffix(key, "_bytes"):
		return "bytes"
	case strings.HasSuffix(key, "_days"):
		return "days"
	}
	return ""
}

// formatFloat renders f so that it parses back to the same value, without an
// exponent ("0.05", "5", "1000000").
func formatFloat(f float64) string {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// formatText renders a scalar, list or map value in flag syntax.
func formatText(v reflect.Value) string {
	if isDuration(v.Type()) {
		return Duration(v.Int()).String()
	}
	switch v.Kind() {
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.String:
		return v.String()
	case reflect.Int, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Float64:
		return formatFloat(v.Float())
	case reflect.Pointer:
		if v.IsNil() {
			return ""
		}
		return formatText(v.Elem())
	case reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = formatText(v.Index(i))
		}
		return strings.Join(parts, ",")
	case reflect.Map:
		parts := make([]string, 0, v.Len())
		for _, k := range sortedMapKeys(v) {
			parts = append(parts, k.String()+"="+formatText(v.MapIndex(k)))
		}
		return strings.Join(parts, ",")
	default:
		return ""
	}
}

// sortedMapKeys returns the keys of a map with string keys, sorted.
func sortedMapKeys(v reflect.Value) []reflect.Value {
	keys := v.MapKeys()
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	return keys
}
