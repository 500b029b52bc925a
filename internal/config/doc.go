// Package config owns the configuration of agaobs-agent: the Config struct
// with every key and its default, the YAML file format, the flags and
// environment variables that override it, and validation. It parses and
// checks values; the components named in each key's help apply them.
//
// # Sources and precedence
//
// One YAML file (--config FILE, or $AGAOBS_CONFIG when the flag is not given)
// holds flat snake_case keys. Every key that is not file-only is also a flag
// and an environment variable:
//
//	prometheus_port    --prometheus-port    AGAOBS_PROMETHEUS_PORT
//
// A value is taken from the first of: a flag given on the command line, the
// environment variable, the file, the default. Lists are comma-separated or
// given by repeating the flag (--ring-allowed-uids 0,1000); maps are
// k=v,k2=v2. A list or map from a flag or the environment replaces the whole
// value from the file. The structured keys alert_rules, slos and bpf_probes
// are file-only. Keys that end in a unit (_seconds, _bytes, _us, _days) and
// audit_flush_interval (seconds) take numbers; other durations take
// Prometheus-style duration strings ("30s", "5m", "30d", "2ms", "1h30m"), see
// Duration.
//
// # Strictness
//
// An unknown key in the file, a value that does not parse, a value of the
// wrong YAML type and a failed validation are errors; Load returns them as
// *Error, which names the key (a path such as "alert_rules[1].operator" for
// nested keys) and where the value came from: the file and line, "flag --x"
// or "env AGAOBS_X". Callers exit with status 2 on any error from Load.
// Unknown flags are reported by pflag when the flag set is parsed. Unknown
// AGAOBS_* environment variables only produce warnings, except AGAOBS_CONFIG,
// AGAOBS_PRODUCER and AGAOBS_ROLE (used by producers) and AGAOBS_TEST_*
// (reserved for tests, never read as configuration). An empty file, or one
// with only comments, is valid; a null value means the key's default.
//
// # Reload
//
// Loader.Load can be called again, for example on SIGHUP: it re-reads the
// file and applies the same environment and flags. The caller keeps its old
// Config when the new one is rejected; Diff names the keys that changed.
// Render prints a Config as YAML that Load accepts back.
package config
