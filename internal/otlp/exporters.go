package otlp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc/credentials"
)

// tlsConfig builds the TLS settings of otlp_tls_*; nil when none is set
// (the SDK then reads OTEL_EXPORTER_OTLP_CERTIFICATE and friends).
func (o Options) tlsConfig() (*tls.Config, error) {
	if o.CAFile == "" && o.CertFile == "" {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("otlp_tls_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("otlp_tls_ca_file %s: no PEM certificate in it", o.CAFile)
		}
		c.RootCAs = pool
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("otlp_tls_cert_file/otlp_tls_key_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

func isURL(endpoint string) bool { return strings.Contains(endpoint, "://") }

func (o Options) newTraceExporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	tc, err := o.tlsConfig()
	if err != nil {
		return nil, err
	}
	if o.protocol() == "http/protobuf" {
		var opts []otlptracehttp.Option
		switch {
		case isURL(o.Endpoint):
			opts = append(opts, otlptracehttp.WithEndpointURL(strings.TrimSuffix(o.Endpoint, "/")+"/v1/traces"))
		case o.Endpoint != "":
			opts = append(opts, otlptracehttp.WithEndpoint(o.Endpoint))
		}
		if o.Insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		if tc != nil {
			opts = append(opts, otlptracehttp.WithTLSClientConfig(tc))
		}
		if len(o.Headers) > 0 {
			opts = append(opts, otlptracehttp.WithHeaders(o.Headers))
		}
		if o.Timeout > 0 {
			opts = append(opts, otlptracehttp.WithTimeout(o.Timeout))
		}
		return otlptracehttp.New(ctx, opts...)
	}
	var opts []otlptracegrpc.Option
	switch {
	case isURL(o.Endpoint):
		opts = append(opts, otlptracegrpc.WithEndpointURL(o.Endpoint))
	case o.Endpoint != "":
		opts = append(opts, otlptracegrpc.WithEndpoint(o.Endpoint))
	}
	if o.Insecure {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	if tc != nil {
		opts = append(opts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(tc)))
	}
	if len(o.Headers) > 0 {
		opts = append(opts, otlptracegrpc.WithHeaders(o.Headers))
	}
	if o.Timeout > 0 {
		opts = append(opts, otlptracegrpc.WithTimeout(o.Timeout))
	}
	return otlptracegrpc.New(ctx, opts...)
}

func (o Options) newLogExporter(ctx context.Context) (sdklog.Exporter, error) {
	tc, err := o.tlsConfig()
	if err != nil {
		return nil, err
	}
	if o.protocol() == "http/protobuf" {
		var opts []otlploghttp.Option
		switch {
		case isURL(o.Endpoint):
			opts = append(opts, otlploghttp.WithEndpointURL(strings.TrimSuffix(o.Endpoint, "/")+"/v1/logs"))
		case o.Endpoint != "":
			opts = append(opts, otlploghttp.WithEndpoint(o.Endpoint))
		}
		if o.Insecure {
			opts = append(opts, otlploghttp.WithInsecure())
		}
		if tc != nil {
			opts = append(opts, otlploghttp.WithTLSClientConfig(tc))
		}
		if len(o.Headers) > 0 {
			opts = append(opts, otlploghttp.WithHeaders(o.Headers))
		}
		if o.Timeout > 0 {
			opts = append(opts, otlploghttp.WithTimeout(o.Timeout))
		}
		return otlploghttp.New(ctx, opts...)
	}
	var opts []otlploggrpc.Option
	switch {
	case isURL(o.Endpoint):
		opts = append(opts, otlploggrpc.WithEndpointURL(o.Endpoint))
	case o.Endpoint != "":
		opts = append(opts, otlploggrpc.WithEndpoint(o.Endpoint))
	}
	if o.Insecure {
		opts = append(opts, otlploggrpc.WithInsecure())
	}
	if tc != nil {
		opts = append(opts, otlploggrpc.WithTLSCredentials(credentials.NewTLS(tc)))
	}
	if len(o.Headers) > 0 {
		opts = append(opts, otlploggrpc.WithHeaders(o.Headers))
	}
	if o.Timeout > 0 {
		opts = append(opts, otlploggrpc.WithTimeout(o.Timeout))
	}
	return otlploggrpc.New(ctx, opts...)
}

// temporality is the selector of otlp_metrics_temporality; nil leaves it
// to the exporter (which reads
// OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, else cumulative).
func (o Options) temporality() sdkmetric.TemporalitySelector {
	switch o.Temporality {
	case "delta":
		return func(k sdkmetric.InstrumentKind) metricdata.Temporality {
			switch k {
			case sdkmetric.InstrumentKindUpDownCounter, sdkmetric.InstrumentKindObservableUpDownCounter,
				sdkmetric.InstrumentKindGauge, sdkmetric.InstrumentKindObservableGauge:
				return metricdata.CumulativeTemporality
			}
			return metricdata.DeltaTemporality
		}
	case "cumulative":
		return sdkmetric.DefaultTemporalitySelector
	}
	return nil
}

func (o Options) newMetricExporter(ctx context.Context) (sdkmetric.Exporter, error) {
	tc, err := o.tlsConfig()
	if err != nil {
		return nil, err
	}
	sel := o.temporality()
	if o.protocol() == "http/protobuf" {
		var opts []otlpmetrichttp.Option
		switch {
		case isURL(o.Endpoint):
			opts = append(opts, otlpmetrichttp.WithEndpointURL(strings.TrimSuffix(o.Endpoint, "/")+"/v1/metrics"))
		case o.Endpoint != "":
			opts = append(opts, otlpmetrichttp.WithEndpoint(o.Endpoint))
		}
		if o.Insecure {
			opts = append(opts, otlpmetrichttp.WithInsecure())
		}
		if tc != nil {
			opts = append(opts, otlpmetrichttp.WithTLSClientConfig(tc))
		}
		if len(o.Headers) > 0 {
			opts = append(opts, otlpmetrichttp.WithHeaders(o.Headers))
		}
		if o.Timeout > 0 {
			opts = append(opts, otlpmetrichttp.WithTimeout(o.Timeout))
		}
		if sel != nil {
			opts = append(opts, otlpmetrichttp.WithTemporalitySelector(sel))
		}
		return otlpmetrichttp.New(ctx, opts...)
	}
	var opts []otlpmetricgrpc.Option
	switch {
	case isURL(o.Endpoint):
		opts = append(opts, otlpmetricgrpc.WithEndpointURL(o.Endpoint))
	case o.Endpoint != "":
		opts = append(opts, otlpmetricgrpc.WithEndpoint(o.Endpoint))
	}
	if o.Insecure {
		opts = append(opts, otlpmetricgrpc.WithInsecure())
	}
	if tc != nil {
		opts = append(opts, otlpmetricgrpc.WithTLSCredentials(credentials.NewTLS(tc)))
	}
	if len(o.Headers) > 0 {
		opts = append(opts, otlpmetricgrpc.WithHeaders(o.Headers))
	}
	if o.Timeout > 0 {
		opts = append(opts, otlpmetricgrpc.WithTimeout(o.Timeout))
	}
	if sel != nil {
		opts = append(opts, otlpmetricgrpc.WithTemporalitySelector(sel))
	}
	return otlpmetricgrpc.New(ctx, opts...)
}
