// Command agaobs-testcol is a minimal OpenTelemetry Collector distribution for
// the agaobs end-to-end tests: the OTLP receiver (gRPC and HTTP, with the
// receiver's standard TLS settings) and the agaobstest exporter, which appends
// what it receives as OTLP/JSON lines to files a test can read.
//
//	agaobs-testcol --config config.yaml
//
// Unlike the upstream distributions, the collector's own metrics are off by
// default (service::telemetry::metrics::level: none), so several instances can
// run at once without fighting over localhost:8888.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configtelemetry"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"

	"github.com/agaobs/agaobs/tests/otelcol/agaobstestexporter"
)

// collectorVersion names the collector core release this distribution is built on.
const collectorVersion = "0.165.0"

func main() {
	if err := newCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "agaobs-testcol:", err)
		os.Exit(1)
	}
}

// newCommand returns the collector's command line (run, validate, components, ...).
func newCommand() *cobra.Command {
	return otelcol.NewCommand(settings())
}

func settings() otelcol.CollectorSettings {
	return otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{
			Command:     "agaobs-testcol",
			Description: "OpenTelemetry Collector for the agaobs end-to-end tests",
			Version:     collectorVersion + "-agaobs",
		},
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				ProviderFactories: []confmap.ProviderFactory{
					fileprovider.NewFactory(),
					envprovider.NewFactory(),
					yamlprovider.NewFactory(),
				},
				DefaultScheme: "env",
			},
		},
	}
}

func components() (otelcol.Factories, error) {
	var f otelcol.Factories
	var err error
	if f.Receivers, err = otelcol.MakeFactoryMap(otlpreceiver.NewFactory()); err != nil {
		return otelcol.Factories{}, err
	}
	if f.Exporters, err = otelcol.MakeFactoryMap(agaobstestexporter.NewFactory()); err != nil {
		return otelcol.Factories{}, err
	}
	f.ReceiverModules = map[component.Type]string{
		otlpreceiver.NewFactory().Type(): "go.opentelemetry.io/collector/receiver/otlpreceiver v" + collectorVersion,
	}
	f.ExporterModules = map[component.Type]string{
		agaobstestexporter.NewFactory().Type(): "github.com/agaobs/agaobs/tests/otelcol/agaobstestexporter",
	}
	f.Telemetry = quietTelemetry{otelconftelemetry.NewFactory()}
	return f, nil
}

// quietTelemetry is the upstream telemetry factory with the collector's own
// metrics off by default; a config may still turn them on.
type quietTelemetry struct {
	telemetry.Factory
}

func (q quietTelemetry) CreateDefaultConfig() component.Config {
	cfg := q.Factory.CreateDefaultConfig()
	if c, ok := cfg.(*otelconftelemetry.Config); ok {
		c.Metrics.Level = configtelemetry.LevelNone
	}
	return cfg
}
