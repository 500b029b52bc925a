// Package probes owns agaobs's eBPF latency probes on AGA producer
// processes: the BPF object generated from bpf/ (committed with its Go
// bindings, so builds need no clang), loading it with graceful degradation
// (no privilege, no kernel support: eBPF reported unavailable, the agent
// unaffected), attaching the scheduler probes once and the uprobes per
// producer process (its executable, libpython, libcudart/libcuda, the
// forward marker library; USDT notes for CPython's GC), and exporting the
// in-kernel log2 histograms and counters at scrape time as Prometheus
// histograms in seconds. Nothing crosses to user space per event.
package probes
