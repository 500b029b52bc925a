package health

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/agaobs/agaobs/internal/jsonfloat"
)

// Status is a component's or the agent's health.
type Status string

// The statuses. Only Healthy, Degraded and Unhealthy are ever the overall
// status.
const (
	Healthy   Status = "healthy"
	Degraded  Status = "degraded"
	Unhealthy Status = "unhealthy"
	Disabled  Status = "disabled" // switched off or nothing to check: never worsens the overall status
	Closed    Status = "closed"   // a producer that closed cleanly: never worsens the overall status
)

// Rank orders statuses for the worst-of aggregation: 0 healthy, disabled,
// closed and anything unknown (the seed counted unknown as healthy),
// 1 degraded, 2 unhealthy.
func (s Status) Rank() int {
	switch s {
	case Degraded:
		return 1
	case Unhealthy:
		return 2
	}
	return 0
}

// MetricValue is the agaobs_health_status encoding: healthy 0, degraded 1,
// unhealthy 2, disabled -1, closed (and unknown) 0.
func (s Status) MetricValue() float64 {
	switch s {
	case Degraded:
		return 1
	case Unhealthy:
		return 2
	case Disabled:
		return -1
	}
	return 0
}

// rankStatus is the overall status of a worst rank.
func rankStatus(rank int) Status {
	switch rank {
	case 0:
		return Healthy
	case 1:
		return Degraded
	}
	return Unhealthy
}

// Component is one entry of /health's "components": its status plus extra
// fields, serialised as one flat JSON object {"status": "...", <fields>...}
// (the seed's shape, e.g. {"status":"degraded","utilization":0.96,"count":96}).
type Component struct {
	Status Status
	Fields map[string]any
}

// MarshalJSON writes "status" first, then the fields in key order; Status
// wins over a "status" field. NaN and ±Inf become "NaN", "+Inf", "-Inf"
// (package jsonfloat), and a value encoding/json rejects becomes its fmt
// form, so that one odd field never breaks the whole /health response.
func (c Component) MarshalJSON() ([]byte, error) {
	keys := make([]string, 0, len(c.Fields))
	for k := range c.Fields {
		if k != "status" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteString(`{"status":`)
	writeValue(&b, string(c.Status))
	for _, k := range keys {
		b.WriteByte(',')
		writeValue(&b, k)
		b.WriteByte(':')
		writeValue(&b, c.Fields[k])
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func writeValue(b *bytes.Buffer, v any) {
	// Other types that still fail (named floats, structs) fall back to fmt.
	enc, err := json.Marshal(jsonfloat.Replace(v))
	if err != nil {
		enc, _ = json.Marshal(fmt.Sprint(v)) // a string always encodes
	}
	b.Write(enc)
}
