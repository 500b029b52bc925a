package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxNodes bounds the number of YAML nodes the decoder visits, so that a file
// full of aliases cannot make it run away.
const maxNodes = 1 << 20

// defaulter is implemented by list elements that have defaults; the decoder
// calls SetDefaults on every element before it decodes the element.
type defaulter interface{ SetDefaults() }

// decoder is a strict decoder from a yaml.Node tree into configuration
// structs. It records the line of every key it decodes in lines.
type decoder struct {
	file  string
	lines map[string]int // key path -> line
	nodes int
}

// decodeFile decodes the YAML document data (read from file) into c, which
// holds the defaults. Keys the file leaves out or sets to null keep their
// value. It returns the line of every key it set, by key path.
func decodeFile(file string, data []byte, c *Config) (map[string]int, error) {
	d := &decoder{file: file, lines: make(map[string]int)}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) { // empty, or only comments
			return d.lines, nil
		}
		return nil, d.syntaxError(err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, d.syntaxError(err)
		}
		return nil, &Error{Source: file, Line: next.Line, Msg: "the file holds more than one YAML document"}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return d.lines, nil
		}
		root = root.Content[0]
	}
	root = resolveAlias(root)
	if isNull(root) {
		return d.lines, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, &Error{Source: file, Line: root.Line, Msg: "expected a mapping of keys, got " + describe(root)}
	}
	if err := d.decodeStruct("", root, reflect.ValueOf(c).Elem()); err != nil {
		return nil, err
	}
	return d.lines, nil
}

// syntaxError converts an error of the YAML parser ("yaml: line N: msg").
func (d *decoder) syntaxError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, after, ok := strings.Cut(rest, ": "); ok {
			if n, convErr := strconv.Atoi(num); convErr == nil {
				line, msg = n, after
			}
		}
	}
	return &Error{Source: d.file, Line: line, Msg: "invalid YAML: " + msg, Err: err}
}

// fail returns an *Error about key path at node n.
func (d *decoder) fail(path string, n *yaml.Node, msg string) error {
	return &Error{Key: path, Source: d.file, Line: n.Line, Msg: msg}
}

// resolveAlias follows alias nodes to the node they name.
func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// isNull reports whether n is a YAML null.
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names the YAML type of n for error messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "null"
		}
		return strconv.Quote(n.Value)
	}
	return "an unsupported YAML node"
}

// wrongType returns the message for a node of the wrong YAML type.
func wrongType(path string, t reflect.Type, n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode && !isNull(n) {
		return badScalar(path, t, n.Value)
	}
	return "expected " + expected(path, t) + ", got " + describe(n)
}

// joinKey returns the path of key name inside path.
func joinKey(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// decodeStruct decodes mapping n into struct v: only the struct's keys are
// allowed, each at most once; null values keep the field as it is.
func (d *decoder) decodeStruct(path string, n *yaml.Node, v reflect.Value) error {
	fields := fieldsOf(v.Type())
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := resolveAlias(n.Content[i]), resolveAlias(n.Content[i+1])
		if kn.Kind != yaml.ScalarNode {
			return d.fail(path, kn, "expected a key name, got "+describe(kn))
		}
		p := joinKey(path, kn.Value)
		if kn.ShortTag() == "!!merge" {
			return d.fail(p, kn, "merge keys (<<) are not supported")
		}
		if seen[kn.Value] {
			return d.fail(p, kn, "duplicate key")
		}
		seen[kn.Value] = true
		f, ok := lookupField(fields, kn.Value)
		if !ok {
			return d.fail(p, kn, "unknown key"+suggest(kn.Value, fields))
		}
		d.lines[p] = kn.Line
		if isNull(vn) {
			continue
		}
		if err := d.decodeValue(p, vn, v.Field(f.index)); err != nil {
			return err
		}
	}
	for _, f := range fields {
		if f.required && !seen[f.name] {
			return d.fail(joinKey(path, f.name), n, "missing required key")
		}
	}
	return nil
}

// decodeValue decodes n into v, whose key path is path.
func (d *decoder) decodeValue(path string, n *yaml.Node, v reflect.Value) error {
	d.nodes++
	if d.nodes > maxNodes {
		return d.fail(path, n, fmt.Sprintf("the document has more than %d nodes", maxNodes))
	}
	t := v.Type()
	if isDuration(t) {
		if n.Kind != yaml.ScalarNode || isNull(n) {
			return d.fail(path, n, wrongType(path, t, n))
		}
		dur, err := parseDuration(n.Value)
		if err != nil {
			return d.fail(path, n, badScalar(path, t, n.Value))
		}
		v.SetInt(int64(dur))
		return nil
	}
	if isForeign(t) {
		return d.decodeForeign(path, n, v)
	}
	switch t.Kind() {
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			return d.fail(path, n, wrongType(path, t, n))
		}
		v.SetBool(b)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || isNull(n) {
			return d.fail(path, n, wrongType(path, t, n))
		}
		v.SetString(n.Value)
	case reflect.Int, reflect.Int64:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			return d.fail(path, n, wrongType(path, t, n))
		}
		var i int64
		if err := n.Decode(&i); err != nil || v.OverflowInt(i) {
			return d.fail(path, n, invalid(n.Value, "out of range"))
		}
		v.SetInt(i)
	case reflect.Float64:
		tag := n.ShortTag()
		if n.Kind != yaml.ScalarNode || (tag != "!!int" && tag != "!!float") {
			return d.fail(path, n, wrongType(path, t, n))
		}
		var f float64
		if err := n.Decode(&f); err != nil {
			return d.fail(path, n, invalid(n.Value, "out of range"))
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return d.fail(path, n, invalid(n.Value, "expected a finite number"))
		}
		v.SetFloat(f)
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		if err := d.decodeValue(path, n, p.Elem()); err != nil {
			return err
		}
		v.Set(p)
	case reflect.Slice:
		return d.decodeSlice(path, n, v)
	case reflect.Map:
		return d.decodeMap(path, n, v)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return d.fail(path, n, wrongType(path, t, n))
		}
		return d.decodeStruct(path, n, v)
	default:
		return d.fail(path, n, "unsupported field type "+t.String())
	}
	return nil
}

// decodeSlice decodes sequence n into slice v. Elements that implement
// defaulter get their defaults first; a null struct element keeps them.
// An empty sequence leaves v nil.
func (d *decoder) decodeSlice(path string, n *yaml.Node, v reflect.Value) error {
	t := v.Type()
	if n.Kind != yaml.SequenceNode {
		return d.fail(path, n, wrongType(path, t, n))
	}
	out := reflect.New(t).Elem()
	for i, en := range n.Content {
		en = resolveAlias(en)
		p := fmt.Sprintf("%s[%d]", path, i)
		d.lines[p] = en.Line
		e := reflect.New(t.Elem()).Elem()
		if df, ok := e.Addr().Interface().(defaulter); ok {
			df.SetDefaults()
			if isNull(en) {
				out = reflect.Append(out, e)
				continue
			}
		}
		if err := d.decodeValue(p, en, e); err != nil {
			return err
		}
		out = reflect.Append(out, e)
	}
	v.Set(out)
	return nil
}

// decodeMap decodes mapping n into map v (string keys). An empty mapping
// leaves v nil.
func (d *decoder) decodeMap(path string, n *yaml.Node, v reflect.Value) error {
	t := v.Type()
	if n.Kind != yaml.MappingNode {
		return d.fail(path, n, wrongType(path, t, n))
	}
	out := reflect.New(t).Elem()
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := resolveAlias(n.Content[i]), resolveAlias(n.Content[i+1])
		if kn.Kind != yaml.ScalarNode || isNull(kn) {
			return d.fail(path, kn, "expected a key name, got "+describe(kn))
		}
		p := joinKey(path, kn.Value)
		if kn.ShortTag() == "!!merge" {
			return d.fail(p, kn, "merge keys (<<) are not supported")
		}
		key := reflect.ValueOf(kn.Value).Convert(t.Key())
		if out.IsValid() && !out.IsNil() && out.MapIndex(key).IsValid() {
			return d.fail(p, kn, "duplicate key")
		}
		d.lines[p] = kn.Line
		e := reflect.New(t.Elem()).Elem()
		if err := d.decodeValue(p, vn, e); err != nil {
			return err
		}
		if out.IsNil() {
			out.Set(reflect.MakeMap(t))
		}
		out.SetMapIndex(key, e)
	}
	v.Set(out)
	return nil
}

// suggest returns ` (did you mean "x"?)` for the field name closest to name,
// or "" when none is close.
func suggest(name string, fields []fieldInfo) string {
	best, bestDist := "", 3
	for _, f := range fields {
		if dist := editDistance(name, f.name); dist < bestDist {
			best, bestDist = f.name, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance returns the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
