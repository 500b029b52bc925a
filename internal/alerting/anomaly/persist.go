package anomaly

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The state file keeps one blob per producer: a version byte, then the
// producer's first and last minutes, its peer group, and every baseline
// (fixed-size records), so a restarted agent resumes where it stopped and
// a producer that takes a dead one's name over keeps its baselines.
const persistVersion = 1

// maxGroupLen bounds a persisted group key (identity fields a producer
// chose).
const maxGroupLen = 4096

// Marshal encodes the baselines of one producer; ok is false when the
// detector has none for it.
func (d *Detector) Marshal(name string) ([]byte, bool) {
	p := d.producers[name]
	if p == nil {
		return nil, false
	}
	var b bytes.Buffer
	w := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) } // bytes.Buffer writes cannot fail
	w(uint8(persistVersion))
	w(p.first)
	w(p.last)
	g := p.group
	if len(g) > maxGroupLen {
		g = g[:maxGroupLen]
	}
	w(uint16(len(g)))
	b.WriteString(g)
	writeSeries := func(list []*series) {
		var mask uint16
		for i, s := range list {
			if s != nil {
				mask |= 1 << i
			}
		}
		w(mask)
		for _, s := range list {
			if s != nil {
				w(&s.b)
				w(s.since)
			}
		}
	}
	writeSeries(p.sig[:])
	w(uint16(len(p.layers)))
	for l := range p.layers {
		writeSeries(p.layers[l][:])
	}
	var mask uint8
	for k, st := range p.strag {
		if st != nil {
			mask |= 1 << k
		}
	}
	w(mask)
	for _, st := range p.strag {
		if st != nil {
			w(&st.b)
		}
	}
	return b.Bytes(), true
}

// Restore loads one producer's baselines as Marshal wrote them, replacing
// any it has; a malformed or oversized blob is an error and loads nothing.
func (d *Detector) Restore(name string, blob []byte) error {
	p, n, err := d.decode(name, blob)
	if err != nil {
		return fmt.Errorf("anomaly: restore %q: %w", name, err)
	}
	base := d.series
	if old := d.producers[name]; old != nil {
		base -= old.count
	}
	if base+n > d.cfg.MaxSeries {
		return fmt.Errorf("anomaly: restore %q: %d series over the budget of %d", name, n, d.cfg.MaxSeries)
	}
	p.count = n
	d.series = base + n
	d.producers[name] = p
	return nil
}

var errTrailing = errors.New("trailing bytes")

func (d *Detector) decode(name string, blob []byte) (*producer, int, error) {
	r := bytes.NewReader(blob)
	rd := func(v any) error { return binary.Read(r, binary.LittleEndian, v) }
	var version uint8
	if err := rd(&version); err != nil {
		return nil, 0, err
	}
	if version != persistVersion {
		return nil, 0, fmt.Errorf("version %d, want %d", version, persistVersion)
	}
	p := &producer{name: name}
	var glen uint16
	if err := errors.Join(rd(&p.first), rd(&p.last), rd(&glen)); err != nil {
		return nil, 0, err
	}
	if glen > maxGroupLen {
		return nil, 0, fmt.Errorf("group key of %d bytes", glen)
	}
	g := make([]byte, glen)
	if _, err := io.ReadFull(r, g); err != nil {
		return nil, 0, err
	}
	p.group = string(g)
	count := 0
	readSeries := func(list []*series) error {
		var mask uint16
		if err := rd(&mask); err != nil {
			return err
		}
		if mask>>len(list) != 0 {
			return fmt.Errorf("series mask %#x", mask)
		}
		for i := range list {
			if mask&(1<<i) == 0 {
				continue
			}
			s := &series{}
			if err := errors.Join(rd(&s.b), rd(&s.since)); err != nil {
				return err
			}
			if !s.b.finite() {
				return errors.New("non-finite baseline")
			}
			list[i] = s
			count++
		}
		return nil
	}
	if err := readSeries(p.sig[:]); err != nil {
		return nil, 0, err
	}
	var layers uint16
	if err := rd(&layers); err != nil {
		return nil, 0, err
	}
	if int(layers) > d.cfg.MaxLayers {
		return nil, 0, fmt.Errorf("%d layers, at most %d", layers, d.cfg.MaxLayers)
	}
	p.layers = make([][NumLayerSignals]*series, layers)
	for l := range p.layers {
		if err := readSeries(p.layers[l][:]); err != nil {
			return nil, 0, err
		}
	}
	var mask uint8
	if err := rd(&mask); err != nil {
		return nil, 0, err
	}
	if mask>>len(p.strag) != 0 {
		return nil, 0, fmt.Errorf("straggler mask %#x", mask)
	}
	for k := range p.strag {
		if mask&(1<<k) != 0 {
			st := &straggler{}
			if err := rd(&st.b); err != nil {
				return nil, 0, err
			}
			if !finite(float64(st.b.C)) || !finite(float64(st.b.S)) {
				return nil, 0, errors.New("non-finite straggler baseline")
			}
			p.strag[k] = st
		}
	}
	if r.Len() != 0 {
		return nil, 0, errTrailing
	}
	return p, count, nil
}

// finite reports whether every number of b is finite (a state file is
// checked before it is trusted).
func (b *Baseline) finite() bool {
	for _, v := range [...]float32{b.C, b.S, b.E} {
		if !finite(float64(v)) {
			return false
		}
	}
	for i := range b.SC {
		if !finite(float64(b.SC[i])) || !finite(float64(b.SS[i])) {
			return false
		}
	}
	return true
}
