package notify

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/common/model"

	"github.com/agaobs/agaobs/internal/jsonfloat"
)

// Alert statuses.
const (
	StatusFiring   = "firing"
	StatusResolved = "resolved"
)

// Alert is one notification.
type Alert struct {
	Name         string            // rule name; also labels["alertname"]
	Status       string            // "firing" or "resolved"
	Severity     string            // info | warning | critical
	Producer     string            // "" for node-wide rules
	Metric       string            // metric the rule evaluates
	Value        float64           // value that triggered (or last seen)
	Threshold    float64           // rule threshold
	Message      string            // rendered message (also annotations["summary"])
	Labels       map[string]string // full label set: alertname, severity, producer (per-producer rules), node, the rule's labels
	Annotations  map[string]string // summary, description, the rule's annotations
	StartsAt     time.Time         // when it started firing
	EndsAt       time.Time         // resolved time; zero while firing
	Timestamp    time.Time         // when this notification was produced
	GeneratorURL string            // may be empty
}

// Fingerprint is a stable hash of the alert's label set as sent (Labels
// without empty values; alertname, severity and producer taken from Name,
// Severity and Producer when Labels lacks them), as 16 hex digits. It is Alertmanager's own fingerprint:
// FNV-1a over the sorted name/value pairs, each followed by the byte 0xff
// (prometheus/common model.LabelSet.Fingerprint), so the value in webhook
// messages matches the one Alertmanager computes for the same alert. It is
// computed without building the label map because Notify calls it for
// every alert when the alertmanager channel is on.
func (a Alert) Fingerprint() string { return fmt.Sprintf("%016x", a.fingerprint()) }

// FNV-1a 64 constants (hash/fnv), inlined as model does, to hash strings
// without converting them to []byte.
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

func (a Alert) fingerprint() uint64 {
	names := make([]string, 0, len(a.Labels)+len(defaultLabels))
	for k, v := range a.Labels {
		if v != "" {
			names = append(names, k)
		}
	}
	for _, k := range defaultLabels {
		if a.Labels[k] == "" && a.defaultLabel(k) != "" {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	h := uint64(fnvOffset64)
	add := func(s string) {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= fnvPrime64
		}
		h ^= uint64(model.SeparatorByte)
		h *= fnvPrime64
	}
	for _, k := range names {
		v := a.Labels[k]
		if v == "" {
			v = a.defaultLabel(k)
		}
		add(k)
		add(v)
	}
	return h
}

func (a Alert) resolved() bool { return a.Status == StatusResolved }

// defaultLabels are the labels that fall back to Alert fields.
var defaultLabels = [...]string{"alertname", "severity", "producer"}

func (a Alert) defaultLabel(name string) string {
	switch name {
	case "alertname":
		return a.Name
	case "severity":
		return a.Severity
	case "producer":
		return a.Producer
	}
	return ""
}

// labelSet returns the labels to send. The engine is expected to fill
// Labels completely; the fields are a fallback so that an alert built by hand
// still carries alertname, severity and producer. Empty values are dropped
// because Prometheus and Alertmanager treat an empty label as absent, and
// keeping them would make our fingerprint differ from Alertmanager's.
func (a Alert) labelSet() map[string]string {
	ls := make(map[string]string, len(a.Labels)+len(defaultLabels))
	for k, v := range a.Labels {
		if v != "" {
			ls[k] = v
		}
	}
	for _, k := range defaultLabels {
		if v := a.defaultLabel(k); v != "" && ls[k] == "" {
			ls[k] = v
		}
	}
	return ls
}

// annotationSet returns the annotations to send, with summary defaulting to
// the rendered message.
func (a Alert) annotationSet() map[string]string {
	as := make(map[string]string, len(a.Annotations)+1)
	for k, v := range a.Annotations {
		as[k] = v
	}
	setDefault(as, "summary", a.Message)
	return as
}

func setDefault(m map[string]string, k, v string) {
	if _, ok := m[k]; !ok && v != "" {
		m[k] = v
	}
}

func toLabelSet(m map[string]string) model.LabelSet {
	ls := make(model.LabelSet, len(m))
	for k, v := range m {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls
}

// referenceBody is the seed's webhook JSON (rule … timestamp) plus status,
// producer and labels. Old consumers ignore the extra keys.
type referenceBody struct {
	Rule      string            `json:"rule"`
	Metric    string            `json:"metric"`
	Value     jsonfloat.Float   `json:"value"` // NaN must not lose the notification
	Threshold jsonfloat.Float   `json:"threshold"`
	Severity  string            `json:"severity"`
	Message   string            `json:"message"`
	Timestamp float64           `json:"timestamp"` // epoch seconds, as Python's time.time()
	Status    string            `json:"status"`
	Producer  string            `json:"producer"`
	Labels    map[string]string `json:"labels"`
}

// referenceJSON is the body of the reference webhook and the stdin of the
// exec channel. now stands in for a zero Timestamp.
func referenceJSON(a Alert, now time.Time) ([]byte, error) {
	ts := a.Timestamp
	if ts.IsZero() {
		ts = now
	}
	return json.Marshal(referenceBody{
		Rule:      a.Name,
		Metric:    a.Metric,
		Value:     jsonfloat.Float(a.Value),
		Threshold: jsonfloat.Float(a.Threshold),
		Severity:  a.Severity,
		Message:   a.Message,
		Timestamp: float64(ts.Unix()) + float64(ts.Nanosecond())/1e9, // split so whole seconds stay exact
		Status:    a.Status,
		Producer:  a.Producer,
		Labels:    a.labelSet(),
	})
}

// postableAlert is Alertmanager's api/v2 postableAlert. A zero startsAt is
// omitted so that Alertmanager fills it in itself.
type postableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// webhookMessage is Alertmanager's webhook v4 message
// (alertmanager notify/webhook Message embedding template.Data).
type webhookMessage struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []webhookAlert    `json:"alerts"`
}

// webhookAlert is template.Alert. Times are always present: Alertmanager
// writes endsAt as 0001-01-01T00:00:00Z while an alert fires.
type webhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// webhookReceiver is the receiver name reported in webhook v4 messages.
const webhookReceiver = "agaobs"

// newWebhookMessage builds one v4 message from alerts that share alertname
// and status (the caller groups them).
func newWebhookMessage(alerts []Alert) webhookMessage {
	msg := webhookMessage{
		Version:  "4",
		Status:   alerts[0].Status,
		Receiver: webhookReceiver,
		Alerts:   make([]webhookAlert, 0, len(alerts)),
	}
	var common, commonAnn map[string]string
	for i, a := range alerts {
		ls, as := a.labelSet(), a.annotationSet()
		if i == 0 {
			common, commonAnn = copyMap(ls), copyMap(as)
		} else {
			intersect(common, ls)
			intersect(commonAnn, as)
		}
		endsAt := time.Time{}
		if a.resolved() {
			endsAt = a.EndsAt.UTC()
		}
		msg.Alerts = append(msg.Alerts, webhookAlert{
			Status:       a.Status,
			Labels:       ls,
			Annotations:  as,
			StartsAt:     a.StartsAt.UTC(),
			EndsAt:       endsAt,
			GeneratorURL: a.GeneratorURL,
			Fingerprint:  a.Fingerprint(),
		})
	}
	group := map[string]string{"alertname": msg.Alerts[0].Labels["alertname"]}
	msg.GroupLabels = group
	msg.CommonLabels = common
	msg.CommonAnnotations = commonAnn
	// Alertmanager's group key is "<route matchers>:<group labels>"; our
	// single implicit route has no matchers.
	msg.GroupKey = "{}:" + toLabelSet(group).String()
	return msg
}

func copyMap(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// intersect removes from dst every pair that other does not share.
func intersect(dst, other map[string]string) {
	for k, v := range dst {
		if ov, ok := other[k]; !ok || ov != v {
			delete(dst, k)
		}
	}
}
