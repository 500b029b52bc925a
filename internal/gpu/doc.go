// Package gpu owns the agent's NVIDIA GPU telemetry: NVML through go-nvml
// (cgo, libnvidia-ml loaded at run time, so one binary runs on GPU and
// GPU-less nodes), sampled every gpu_collect_interval into a snapshot that
// agaobs_gpu_* const metrics are rendered from at scrape time
// (metrics.go); XID events from an NVML event set, kept outside the
// snapshot so they stay visible while collections fail (xid.go); the GPU
// health checks nvml, gpu_count, gpu_lost, xid, ecc and thermal
// (checks.go); and the host pid → GPU memory map (Processes).
//
// Everything that touches NVML sits behind the backend interface
// (backend.go): nvml.go and its siblings build with cgo, nocgo.go stands in
// without it and reports NVML missing, so CGO_ENABLED=0 builds still work.
package gpu
