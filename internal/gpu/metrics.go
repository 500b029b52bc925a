package gpu

import (
	"errors"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agaobs/agaobs/internal/schema"
	"github.com/agaobs/agaobs/internal/selfmetrics"
)

// metricsCollector renders the last snapshot as const metrics at scrape
// time: values are as fresh as the last collection
// (agaobs_gpu_last_collect_timestamp_seconds), never read from NVML
// during a scrape.
type metricsCollector struct {
	c *Collector

	info, util, memUtil, memUsed, memTotal, temp, power, energy *prometheus.Desc
	clock, pstate, throttle, ecc, remapped, pcieTx, pcieRx      *prometheus.Desc
	xidTotal, xidLast                                           *prometheus.Desc
	up, down, success, duration, lastCollect                    *prometheus.Desc
	fams                                                        *selfmetrics.Families
}

func newMetricsCollector(c *Collector) *metricsCollector {
	uuid := []string{"uuid"}
	f := new(selfmetrics.Families)
	d := f.Gauge
	const upHelp = "Whether NVML is initialised (1), or 0 with the reason: nvml_missing, driver_not_loaded, version_mismatch, no_permission, unknown."
	return &metricsCollector{
		c:    c,
		fams: f,
		info: d("agaobs_gpu_info", "GPU identity, 1 per GPU of the last collection.",
			"uuid", "index", "name", "pci_bus_id", "driver_version", "cuda_version", "serial"),
		util:     d("agaobs_gpu_utilization_ratio", "Share of the last sample period a kernel ran on the GPU.", uuid...),
		memUtil:  d("agaobs_gpu_memory_utilization_ratio", "Share of the last sample period device memory was read or written.", uuid...),
		memUsed:  d("agaobs_gpu_memory_used_bytes", "Device memory in use.", uuid...),
		memTotal: d("agaobs_gpu_memory_total_bytes", "Device memory installed.", uuid...),
		temp:     d("agaobs_gpu_temperature_celsius", "GPU core temperature.", uuid...),
		power:    d("agaobs_gpu_power_watts", "Power draw of the board.", uuid...),
		energy:   f.Counter("agaobs_gpu_energy_joules_total", "Energy consumed since the driver was loaded.", uuid...),
		clock:    d("agaobs_gpu_clock_hertz", "Current clock frequency by clock domain.", "uuid", "clock"),
		pstate:   d("agaobs_gpu_pstate", "Performance state, 0 (fastest) to 15 (slowest).", uuid...),
		throttle: d("agaobs_gpu_throttle_reason", "1 while the clock event (throttle) reason is active, else 0.", "uuid", "reason"),
		ecc:      f.Counter("agaobs_gpu_ecc_errors_total", "ECC memory errors: volatile since the last driver load, aggregate over the GPU's life.", "uuid", "type"),
		remapped: d("agaobs_gpu_remapped_rows", "Remapped memory rows by state; pending and failure are 1 or 0.", "uuid", "state"),
		pcieTx:   d("agaobs_gpu_pcie_tx_bytes_per_second", "PCIe transmit throughput over the driver's last 20 ms sample.", uuid...),
		pcieRx:   d("agaobs_gpu_pcie_rx_bytes_per_second", "PCIe receive throughput over the driver's last 20 ms sample.", uuid...),
		xidTotal: f.Counter("agaobs_gpu_xid_errors_total", "XID errors received from NVML events since the agent started.", "uuid", "xid"),
		xidLast:  d("agaobs_gpu_xid_last_seconds", "Unix time of the last XID error of this code.", "uuid", "xid"),
		// One family, two shapes: down carries the reason, up does not.
		// Only down is described (a checked collector describes a name
		// once); up has the same name, so the registry accepts it.
		down:        d("agaobs_gpu_up", upHelp, "reason"),
		up:          prometheus.NewDesc("agaobs_gpu_up", upHelp, nil, nil),
		success:     d("agaobs_gpu_collect_success", "Whether the last GPU collection succeeded (1) or failed (0)."),
		duration:    d("agaobs_gpu_collect_duration_seconds", "Duration of the last GPU collection."),
		lastCollect: d("agaobs_gpu_last_collect_timestamp_seconds", "Unix time of the last GPU collection; the GPU series are as old as this."),
	}
}

// Describe implements selfmetrics.Collector: every family, whichever GPUs
// are present.
func (m *metricsCollector) Describe() []selfmetrics.Family { return *m.fams }

// Update implements selfmetrics.Collector.
func (m *metricsCollector) Update(ch chan<- prometheus.Metric) error {
	c := m.c
	c.mu.Lock()
	defer c.mu.Unlock()
	// NVML's strings are the driver's bytes: const metrics panic on
	// invalid UTF-8.
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, schema.LabelValues(labels)...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, schema.LabelValues(labels)...)
	}
	if c.attempted {
		if c.upErr == nil {
			gauge(m.up, 1)
		} else {
			gauge(m.down, 0, c.upErr.reason)
		}
	}
	if s := c.snap; s.done {
		gauge(m.success, b2f(s.ok))
		gauge(m.duration, s.dur.Seconds())
		gauge(m.lastCollect, float64(s.at.UnixNano())/1e9)
	}
	for _, g := range c.snap.gpus {
		gauge(m.info, 1, g.UUID, g.Index, g.Name, g.PCIBusID, c.sys.driver, c.sys.cuda, g.Serial)
		for _, o := range []struct {
			d *prometheus.Desc
			v opt
		}{
			{m.util, g.util}, {m.memUtil, g.memUtil}, {m.memUsed, g.memUsed}, {m.memTotal, g.memTotal},
			{m.temp, g.temp}, {m.power, g.power}, {m.pstate, g.pstate}, {m.pcieTx, g.pcieTx}, {m.pcieRx, g.pcieRx},
		} {
			if o.v.ok {
				gauge(o.d, o.v.v, g.UUID)
			}
		}
		if g.energy.ok {
			counter(m.energy, g.energy.v, g.UUID)
		}
		for _, l := range g.clocks {
			gauge(m.clock, l.v, g.UUID, l.label)
		}
		for _, l := range g.throttle {
			gauge(m.throttle, l.v, g.UUID, l.label)
		}
		for _, l := range g.ecc {
			counter(m.ecc, l.v, g.UUID, l.label)
		}
		for _, l := range g.remapped {
			gauge(m.remapped, l.v, g.UUID, l.label)
		}
	}
	// XIDs outlive collections: a GPU that fell off the bus keeps its
	// XID 79 visible.
	for k, st := range c.xids {
		xid := strconv.FormatUint(k.xid, 10)
		counter(m.xidTotal, float64(st.count), k.uuid, xid)
		gauge(m.xidLast, float64(st.last.UnixNano())/1e9, k.uuid, xid)
	}
	// The last poll's outcome is the collector's, so
	// agaobs_collector_success{collector="gpu"} follows
	// agaobs_gpu_collect_success (dashboards read either).
	switch s := c.snap; {
	case !s.done:
		return selfmetrics.ErrNoData
	case !s.ok:
		return errors.New(s.err)
	}
	return nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
