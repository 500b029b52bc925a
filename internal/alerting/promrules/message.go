package promrules

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"text/template"

	"github.com/agaobs/agaobs/internal/config"
)

// A rule message is a Python format string: the seed formats it with
// message.format(value=, threshold=, metric=, name=). Prometheus expands
// annotations as Go templates, so each placeholder becomes template text:
//
//	{value:.1f}      {{ printf "%.1f" $value }}            exact
//	{value:.1%}      {{ humanizePercentage $value }}        4 significant digits
//	{value}          {{ $value }}                           Go's %v
//	{threshold:.0f}  the threshold, formatted here          exact
//	{metric} {name}  the rule's metric and name             exact
//	{{ ... }}        passed through as a Go template action
//
// Prometheus templates have no arithmetic, so a value that needs scaling
// (latency rules in conventional naming compare seconds, while the message
// speaks the rule's microseconds) is scaled by a PromQL scalar query:
// {{ printf "%.17g * 1e+06" $value | query | first | value | printf ... }}.
// %.17g round-trips the float64, so the scaled value is the one the agent
// prints.

// promTemplatePrelude is what Prometheus prepends to every alert label and
// annotation template (rules/alerting.go); parsing with it makes $value and
// $labels defined, as they are when Prometheus expands the text.
const promTemplatePrelude = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"

// promTemplateFuncs are the functions Prometheus templates provide
// (template/template.go). Only their names matter: checkTemplate parses,
// it never executes.
const promTemplateFuncs = "query first label value strvalue args reReplaceAll safeHtml match title toUpper toLower " +
	"graphLink tableLink sortByLabel humanize humanize1024 humanizeDuration humanizePercentage humanizeTimestamp " +
	"toTime toDuration now pathPrefix externalURL parseDuration urlUnescape stripPort stripDomain"

// checkTemplate reports whether Prometheus can parse text as a label or
// annotation template. A rule file with an unparsable template fails
// `promtool check rules` as a whole, so callers drop or replace the text.
func checkTemplate(text string) error {
	funcs := template.FuncMap{}
	for _, name := range strings.Fields(promTemplateFuncs) {
		funcs[name] = func(...any) any { return nil }
	}
	if _, err := template.New("t").Funcs(funcs).Option("missingkey=zero").Parse(promTemplatePrelude + text); err != nil {
		return fmt.Errorf("parse template %q: %w", text, err)
	}
	return nil
}

// summary returns the summary annotation of rule r: its message translated
// to a Go template, or, when the message is empty or cannot be translated,
// the seed's default message "[SEVERITY] name: metric = value op threshold".
// scale converts the alert's $value to the rule's units.
func summary(r config.AlertRule, scale float64) string {
	if r.Message != "" {
		if s, ok := translateMessage(r.Message, r, scale); ok && checkTemplate(s) == nil {
			return s
		}
	}
	value, _ := valueAction(formatSpec{prec: 4, typ: 'f'}, scale)
	return templateLiteral(fmt.Sprintf("[%s] %s: %s = ", strings.ToUpper(r.Severity), r.Name, r.Metric)) +
		value + templateLiteral(fmt.Sprintf(" %s %s", r.Operator, pyRepr(r.Threshold)))
}

// translateMessage translates the Python format string msg; ok is false
// when msg uses a field, conversion or format spec with no translation (or
// one Python itself rejects, such as a lone "}").
func translateMessage(msg string, r config.AlertRule, scale float64) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(msg); {
		switch {
		case strings.HasPrefix(msg[i:], "{{"):
			// A Go template action: pass it through, so messages written
			// for Prometheus ({{ $labels.producer }}) keep working.
			end := strings.Index(msg[i+2:], "}}")
			if end < 0 {
				return "", false
			}
			b.WriteString(msg[i : i+2+end+2])
			i += 2 + end + 2
		case strings.HasPrefix(msg[i:], "}}"):
			b.WriteByte('}') // Python's escaped brace
			i += 2
		case msg[i] == '}':
			return "", false
		case msg[i] == '{':
			end := strings.IndexByte(msg[i:], '}')
			if end < 0 {
				return "", false
			}
			text, ok := translateField(msg[i+1:i+end], r, scale)
			if !ok {
				return "", false
			}
			b.WriteString(text)
			i += end + 1
		default:
			next := strings.IndexAny(msg[i:], "{}")
			if next < 0 {
				next = len(msg) - i
			}
			b.WriteString(msg[i : i+next])
			i += next
		}
	}
	return b.String(), true
}

// translateField translates one replacement field (the text between the
// braces).
func translateField(field string, r config.AlertRule, scale float64) (string, bool) {
	name, specText, _ := strings.Cut(field, ":")
	spec, ok := parseSpec(specText)
	if !ok {
		return "", false
	}
	switch name {
	case "value":
		return valueAction(spec, scale)
	case "threshold":
		s, ok := spec.format(r.Threshold)
		return templateLiteral(s), ok
	case "metric", "name":
		if specText != "" {
			return "", false
		}
		if name == "metric" {
			return templateLiteral(r.Metric), true
		}
		return templateLiteral(r.Name), true
	}
	return "", false
}

// templateLiteral makes s literal template text: only "{{" would start an
// action.
func templateLiteral(s string) string {
	return strings.ReplaceAll(s, "{{", `{{ "{{" }}`)
}

// formatSpec is the subset of Python's format-spec mini-language that maps
// onto Go's fmt verbs: [sign][0][width][.precision][type].
type formatSpec struct {
	sign  byte // 0, '+', '-' or ' '
	zero  bool
	width int
	prec  int  // -1: not given
	typ   byte // 0, 'e', 'E', 'f', 'F', 'g', 'G' or '%'
}

func parseSpec(s string) (formatSpec, bool) {
	spec := formatSpec{prec: -1}
	i := 0
	if i < len(s) && strings.IndexByte("+- ", s[i]) >= 0 {
		spec.sign = s[i]
		i++
	}
	if i < len(s) && s[i] == '0' {
		spec.zero = true
		i++
	}
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i > start {
		spec.width, _ = strconv.Atoi(s[start:i])
	}
	if i < len(s) && s[i] == '.' {
		i++
		start = i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return spec, false
		}
		spec.prec, _ = strconv.Atoi(s[start:i])
	}
	if i < len(s) && strings.IndexByte("eEfFgG%", s[i]) >= 0 {
		spec.typ = s[i]
		i++
	}
	// Anything left (fill and align, '#', ',', 'd', 'n', ...) has no
	// faithful fmt equivalent.
	return spec, i == len(s) && spec.width < 1000 && spec.prec < 100
}

// verb returns the fmt verb for spec with the given width, type and
// precision defaults resolved as Python resolves them.
func (s formatSpec) verb(width int, typ byte) string {
	v := "%"
	if s.sign == '+' || s.sign == ' ' {
		v += string(s.sign)
	}
	if s.zero {
		v += "0"
	}
	if width > 0 {
		v += strconv.Itoa(width)
	}
	prec := s.prec
	if prec < 0 && typ != 'v' {
		prec = 6 // Python's default for e, f, g and %
	}
	if prec >= 0 {
		v += "." + strconv.Itoa(prec)
	}
	return v + string(typ)
}

// goType maps the Python presentation type to a fmt verb. Python's empty
// type with a precision behaves like g; without one it is str().
func (s formatSpec) goType() byte {
	switch s.typ {
	case 0:
		if s.prec >= 0 {
			return 'g'
		}
		return 'v'
	case '%':
		return 'f'
	}
	return s.typ
}

// format renders v as Python's format(v, spec) does.
func (s formatSpec) format(v float64) (string, bool) {
	switch {
	case s.typ == '%':
		width := max(s.width-1, 0)
		return fmt.Sprintf(s.verb(width, 'f'), v*100) + "%", true
	case s.typ == 0 && s.prec < 0:
		if s.zero {
			return "", false // zero padding of str(): rare, not worth mimicking
		}
		r := pyRepr(v)
		if s.sign != 0 && s.sign != '-' && !strings.HasPrefix(r, "-") {
			r = string(s.sign) + r
		}
		return fmt.Sprintf("%"+pad(s)+"s", r), true
	}
	if s.typ != 0 {
		return fmt.Sprintf(s.verb(s.width, s.goType()), v), true
	}
	if s.zero {
		return "", false
	}
	// Python's empty type with a precision is g that keeps one fractional
	// digit: format(2.0, ".3") is "2.0".
	out := fmt.Sprintf(s.verb(0, 'g'), v)
	if !strings.ContainsAny(out, ".eIN") {
		out += ".0"
	}
	return fmt.Sprintf("%"+pad(s)+"s", out), true
}

// pad is the width flag for a string already formatted.
func pad(s formatSpec) string {
	if s.width > 0 {
		return strconv.Itoa(s.width)
	}
	return ""
}

// valueAction returns the template action printing the alert's value as
// spec formats it, after multiplying by scale.
func valueAction(spec formatSpec, scale float64) (string, bool) {
	if spec.typ == '%' {
		if scale == 1 {
			// No arithmetic in Prometheus templates: humanizePercentage is
			// the closest (value*100 with 4 significant digits).
			return "{{ humanizePercentage $value }}", true
		}
		return scaledValue(scale*100, spec.verb(max(spec.width-1, 0), 'f')+"%%"), true
	}
	verb := spec.verb(spec.width, spec.goType())
	if scale == 1 {
		if verb == "%v" {
			return "{{ $value }}", true
		}
		return "{{ printf " + strconv.Quote(verb) + " $value }}", true
	}
	return scaledValue(scale, verb), true
}

// scaledValue prints $value*scale with verb, letting the PromQL engine do
// the multiplication (see the comment at the top of this file).
func scaledValue(scale float64, verb string) string {
	return fmt.Sprintf("{{ printf %s $value | query | first | value | printf %s }}",
		strconv.Quote("%.17g * "+strconv.FormatFloat(scale, 'g', -1, 64)), strconv.Quote(verb))
}

// pyRepr formats v as Python's str(float): the shortest representation,
// with ".0" on integral values and exponent notation outside [1e-4, 1e16).
func pyRepr(v float64) string {
	switch {
	case math.IsNaN(v):
		return "nan"
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	}
	if a := math.Abs(v); a != 0 && (a < 1e-4 || a >= 1e16) {
		return strconv.FormatFloat(v, 'e', -1, 64)
	}
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}
