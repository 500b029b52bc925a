package agaobstestexporter

import (
	"errors"
	"time"
)

// Config is the configuration of the agaobstest exporter.
//
//	exporters:
//	  agaobstest:
//	    directory: /tmp/otlp-out   # required; created if missing
//	    delay: 0s                  # optional; sleep this long in every export call
type Config struct {
	// Directory receives traces.jsonl, logs.jsonl and metrics.jsonl.
	Directory string `mapstructure:"directory"`
	// Delay is slept in each export call before anything is written, so a
	// test can simulate a stalled collector. A request whose context ends
	// during the delay fails with the context's error and writes nothing.
	Delay time.Duration `mapstructure:"delay"`
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Directory == "" {
		return errors.New("directory must be set")
	}
	if c.Delay < 0 {
		return errors.New("delay must not be negative")
	}
	return nil
}
