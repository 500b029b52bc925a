package alerting

import (
	"fmt"
	"strings"
	"text/template"

	"github.com/agaobs/agaobs/internal/pyfmt"
)

// renderMessage renders a rule's message for one alert. Go-template
// parts ({{ $value }}, {{ $labels.producer }}, as in Prometheus rules) run
// first, then the seed's str.format placeholders ({value:.1f},
// {threshold:.0f}, {value:.1%}, {metric}, {name}). An empty message gives
// the seed's default text. Errors belong to this rule alone: the caller
// renders "<error expanding template: …>" and counts the failure.
//
// extra holds a detector rule's placeholders ({value} there is the
// signal's value, {score} the score; see detectorFields).
func renderMessage(r *Rule, value float64, labels map[string]string, extra map[string]any) (string, error) {
	msg := r.Message
	if msg == "" {
		return fmt.Sprintf("[%s] %s: %s = %.4f %s %s", strings.ToUpper(r.Severity), r.Name, r.Metric, value,
			r.Operator, pyfmt.Float(r.Threshold)), nil
	}
	if strings.Contains(msg, "{{") {
		t, err := template.New(r.Name).Option("missingkey=zero").Funcs(template.FuncMap{
			"humanizePercentage": func(v float64) string { return fmt.Sprintf("%.4g%%", v*100) },
		}).Parse("{{$labels := .Labels}}{{$value := .Value}}{{$threshold := .Threshold}}" + msg)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		if err := t.Execute(&b, struct {
			Labels           map[string]string
			Value, Threshold float64
		}{labels, value, r.Threshold}); err != nil {
			return "", err
		}
		msg = b.String()
		if !strings.Contains(msg, "{") {
			return msg, nil
		}
	}
	fields := map[string]any{"value": value, "threshold": r.Threshold, "metric": r.Metric, "name": r.Name}
	for k, v := range extra {
		fields[k] = v
	}
	return pyfmt.Format(msg, fields)
}
