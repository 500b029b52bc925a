package alerting

import (
	"encoding/json"
	"time"
)

const (
	bucketAlerts  = "alerts"
	bucketSLO     = "slo"
	bucketAnomaly = "anomaly"
)

// anomalySaveInterval is how often the baselines (about 1 KiB per series)
// are written; they are also written at shutdown.
const anomalySaveInterval = 10 * time.Minute

// persistedRule is one rule's alerts as saved in state_path.
type persistedRule struct {
	Fingerprint string   `json:"fingerprint"`
	Alerts      []*Alert `json:"alerts"`
}

// save writes the alert states and SLO windows to the state file, so that
// a restart resumes pending `for` progress, firing alerts (without
// re-notifying) and SLO burn windows.
func (e *Engine) save(now time.Time, force bool) {
	if e.opts.State == nil {
		return
	}
	e.mu.Lock()
	rulesKV := map[string]any{}
	for _, r := range e.rules {
		var list []*Alert
		for _, a := range e.active[r.Name] {
			c := *a
			list = append(list, &c)
		}
		if len(list) > 0 {
			rulesKV[r.Name] = persistedRule{Fingerprint: r.Fingerprint, Alerts: list}
		}
	}
	sloKV := map[string]any{}
	for _, s := range e.slos {
		for producer, ser := range s.series {
			c := &sloSeries{Minutes: compact(ser.Minutes), Hours: compact(ser.Hours)}
			sloKV[s.key()+"|"+producer] = c
		}
	}
	var anomalyKV map[string]any
	if e.det != nil && !e.replay && (force || now.Sub(e.lastAnomSave) >= anomalySaveInterval) {
		anomalyKV = map[string]any{}
		for _, name := range e.det.Producers() {
			if blob, ok := e.det.Marshal(name); ok {
				anomalyKV[name] = blob
			}
		}
		e.lastAnomSave = now
	}
	e.dirty, e.lastSave = false, now
	e.mu.Unlock()
	if anomalyKV != nil {
		if err := e.opts.State.Replace(bucketAnomaly, anomalyKV); err != nil {
			e.log.Warn("saving anomaly baselines", "err", err)
		}
	}
	if err := e.opts.State.Replace(bucketAlerts, rulesKV); err != nil {
		e.log.Warn("saving alert state", "err", err)
	}
	if err := e.opts.State.Replace(bucketSLO, sloKV); err != nil {
		e.log.Warn("saving SLO windows", "err", err)
	}
}

// compact keeps the slots that hold data.
func compact(slots []slot) []slot {
	var out []slot
	for _, s := range slots {
		if s.Total > 0 {
			out = append(out, s)
		}
	}
	return out
}

// restore loads what save wrote; state of rules whose definition changed
// is dropped, and baselines that do not decode are skipped with a warning.
func (e *Engine) restore() error {
	if e.opts.State == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	err := e.opts.State.ForEach(bucketAlerts, func(name string, raw []byte) error {
		var p persistedRule
		if json.Unmarshal(raw, &p) != nil {
			return nil
		}
		r := e.rule(name)
		if r == nil || r.Fingerprint != p.Fingerprint {
			return nil
		}
		m := map[string]*Alert{}
		for _, a := range p.Alerts {
			m[a.Producer] = a
		}
		e.active[name] = m
		return nil
	})
	if err != nil {
		return err
	}
	if e.det != nil {
		err := e.opts.State.ForEach(bucketAnomaly, func(name string, raw []byte) error {
			var blob []byte
			if err := json.Unmarshal(raw, &blob); err != nil {
				e.log.Warn("anomaly baselines not restored", "producer", name, "err", err)
				return nil
			}
			if err := e.det.Restore(name, blob); err != nil {
				e.log.Warn("anomaly baselines not restored", "producer", name, "err", err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return e.opts.State.ForEach(bucketSLO, func(key string, raw []byte) error {
		for _, s := range e.slos {
			prefix := s.key() + "|"
			if len(key) <= len(prefix) || key[:len(prefix)] != prefix {
				continue
			}
			var saved sloSeries
			if json.Unmarshal(raw, &saved) != nil {
				return nil
			}
			ser := s.seriesFor(key[len(prefix):])
			for _, sl := range saved.Minutes {
				ser.Minutes[sl.ID%int64(len(ser.Minutes))] = sl
			}
			for _, sl := range saved.Hours {
				ser.Hours[sl.ID%int64(len(ser.Hours))] = sl
			}
		}
		return nil
	})
}
