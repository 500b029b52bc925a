package config

import (
	"bytes"
	"fmt"
	"reflect"
	"sort"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// MarshalYAML implements yaml.Marshaler: c becomes a mapping of every key, in
// struct order, including the defaults. Durations are rendered as duration
// strings, empty lists as [] and empty maps as {}; Load accepts the result
// back and yields a Config equal to c.
func (c Config) MarshalYAML() (any, error) {
	return nodeOf(reflect.ValueOf(c))
}

// Render returns c as YAML for `config print`: every key in struct order.
func Render(c Config) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("render config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("render config: %w", err)
	}
	return buf.Bytes(), nil
}

// scalar returns a plain scalar node with value s, its type left to YAML's
// resolution (numbers and booleans).
func scalar(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: s} }

// str returns a string node; the encoder quotes it where YAML would read
// another type.
func str(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

// nodeOf builds the YAML node of a configuration value.
func nodeOf(v reflect.Value) (*yaml.Node, error) {
	t := v.Type()
	if isDuration(t) {
		return str(Duration(v.Int()).String()), nil
	}
	if isForeign(t) {
		return renderForeign(v)
	}
	switch t.Kind() {
	case reflect.Bool:
		return scalar(strconv.FormatBool(v.Bool())), nil
	case reflect.String:
		return str(v.String()), nil
	case reflect.Int, reflect.Int64:
		return scalar(strconv.FormatInt(v.Int(), 10)), nil
	case reflect.Float64:
		return scalar(formatFloat(v.Float())), nil
	case reflect.Pointer:
		if v.IsNil() {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
		}
		return nodeOf(v.Elem())
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		if v.Len() == 0 {
			n.Style = yaml.FlowStyle
		}
		for i := 0; i < v.Len(); i++ {
			e, err := nodeOf(v.Index(i))
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, e)
		}
		return n, nil
	case reflect.Map:
		n := &yaml.Node{Kind: yaml.MappingNode}
		if v.Len() == 0 {
			n.Style = yaml.FlowStyle
		}
		for _, k := range sortedMapKeys(v) {
			e, err := nodeOf(v.MapIndex(k))
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, str(k.String()), e)
		}
		return n, nil
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode}
		for _, f := range fieldsOf(t) {
			e, err := nodeOf(v.Field(f.index))
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, str(f.name), e)
		}
		return n, nil
	}
	return nil, fmt.Errorf("render config: unsupported type %s", t)
}

// Diff returns the sorted names of the top-level keys whose values differ
// between a and b. A nil and an empty list or map are equal.
func Diff(a, b Config) []string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var names []string
	for _, f := range fieldsOf(va.Type()) {
		if !equalValues(va.Field(f.index), vb.Field(f.index)) {
			names = append(names, f.name)
		}
	}
	sort.Strings(names)
	return names
}

// equalValues compares two configuration values of the same type.
func equalValues(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Slice:
		if a.Len() != b.Len() {
			return false
		}
		for i := 0; i < a.Len(); i++ {
			if !equalValues(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		for _, k := range a.MapKeys() {
			bv := b.MapIndex(k)
			if !bv.IsValid() || !equalValues(a.MapIndex(k), bv) {
				return false
			}
		}
		return true
	case reflect.Struct:
		if isForeign(a.Type()) {
			// It may hold funcs, which only DeepEqual compares.
			return reflect.DeepEqual(a.Interface(), b.Interface())
		}
		for i := 0; i < a.NumField(); i++ {
			if !equalValues(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return equalValues(a.Elem(), b.Elem())
	default:
		return a.Equal(b)
	}
}
