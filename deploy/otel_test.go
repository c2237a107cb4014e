package deploy

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const otelConfig = "deploy/otel-collector.yaml"

type otelCollectorConfig struct {
	Receivers  map[string]map[string]any `yaml:"receivers"`
	Processors map[string]map[string]any `yaml:"processors"`
	Exporters  map[string]map[string]any `yaml:"exporters"`
	Extensions map[string]map[string]any `yaml:"extensions"`
	Connectors map[string]map[string]any `yaml:"connectors"`
	Service    struct {
		Extensions []string `yaml:"extensions"`
		Pipelines  map[string]struct {
			Receivers  []string `yaml:"receivers"`
			Processors []string `yaml:"processors"`
			Exporters  []string `yaml:"exporters"`
		} `yaml:"pipelines"`
		Telemetry map[string]any `yaml:"telemetry"`
	} `yaml:"service"`
}

// componentType is the type part of a component id "type/name".
func componentType(id string) string {
	t, _, _ := strings.Cut(id, "/")
	return t
}

// endpointHostPort splits "host:port" or a URL into host and port.
func endpointHostPort(s string) (string, int, bool) {
	if u, err := url.Parse(s); err == nil && u.Host != "" {
		s = u.Host
	}
	i := strings.LastIndex(s, ":")
	if i < 0 {
		return "", 0, false
	}
	n, err := parsePortNumber(s[i+1:])
	return s[:i], n, err == nil
}

func TestEndpointHostPort(t *testing.T) {
	tests := []struct {
		in   string
		host string
		port int
		ok   bool
	}{
		{"http://otel-collector:4317", "otel-collector", 4317, true},
		{"jaeger:4317", "jaeger", 4317, true},
		{"0.0.0.0:13133", "0.0.0.0", 13133, true},
		{"jaeger", "", 0, false},
		{"jaeger:http", "", 0, false},
	}
	for _, tt := range tests {
		h, p, ok := endpointHostPort(tt.in)
		if ok != tt.ok || ok && (h != tt.host || p != tt.port) {
			t.Errorf("endpointHostPort(%q) = %q, %d, %v; want %q, %d, %v", tt.in, h, p, ok, tt.host, tt.port, tt.ok)
		}
	}
}

func TestOTelCollectorConfig(t *testing.T) {
	var c otelCollectorConfig
	readYAMLStrict(t, otelConfig, &c)
	compose := loadCompose(t)
	used := map[string]bool{}
	for name, p := range c.Service.Pipelines {
		signal := componentType(name)
		if !slices.Contains([]string{"traces", "metrics", "logs"}, signal) {
			t.Errorf("pipeline %s: unknown signal %q", name, signal)
		}
		for kind, ids := range map[string][]string{"receivers": p.Receivers, "processors": p.Processors, "exporters": p.Exporters} {
			defined := map[string]map[string]map[string]any{"receivers": c.Receivers, "processors": c.Processors, "exporters": c.Exporters}[kind]
			if kind != "processors" && len(ids) == 0 {
				t.Errorf("pipeline %s has no %s", name, kind)
			}
			for _, id := range ids {
				if _, ok := defined[id]; !ok {
					t.Errorf("pipeline %s uses %s %q, which is not defined", name, kind, id)
				}
				used[kind+" "+id] = true
			}
		}
		// memory_limiter must come first, batch last (collector guidance).
		if n := len(p.Processors); n > 0 {
			if slices.Contains(p.Processors, "memory_limiter") && p.Processors[0] != "memory_limiter" {
				t.Errorf("pipeline %s: memory_limiter must be the first processor", name)
			}
			if slices.Contains(p.Processors, "batch") && p.Processors[n-1] != "batch" {
				t.Errorf("pipeline %s: batch must be the last processor", name)
			}
		}
	}
	for kind, defined := range map[string]map[string]map[string]any{"receivers": c.Receivers, "processors": c.Processors, "exporters": c.Exporters} {
		for id := range defined {
			if !used[kind+" "+id] {
				t.Errorf("%s %q is defined but no pipeline uses it", kind, id)
			}
		}
	}
	for _, id := range c.Service.Extensions {
		if _, ok := c.Extensions[id]; !ok {
			t.Errorf("service.extensions names undefined extension %q", id)
		}
	}
	for id := range c.Extensions {
		if !slices.Contains(c.Service.Extensions, id) {
			t.Errorf("extension %q is defined but not enabled in service.extensions", id)
		}
	}
	// Since collector 0.144 the OTLP exporters are otlp_grpc and otlp_http;
	// the old names still load but log a deprecation warning.
	collector := compose.Services["otel-collector"]
	_, version, _ := strings.Cut(collector.Image, ":")
	for id := range c.Exporters {
		switch componentType(id) {
		case "otlp", "otlphttp":
			t.Errorf("exporter %q: deprecated name, use otlp_grpc or otlp_http", id)
		case "otlp_grpc", "otlp_http":
			if versionLess(version, "0.144") {
				t.Errorf("exporter %q needs collector 0.144 or later; the image is %s", id, collector.Image)
			}
		}
	}
	// The config file is the one the container loads.
	cfgPath := ""
	for _, a := range collector.Command {
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			cfgPath = v
		}
	}
	if host, ok := collector.hostPath(cfgPath); !ok || host != otelConfig {
		t.Errorf("otel-collector loads %q, which is mounted from %q, want %s", cfgPath, host, otelConfig)
	}
	// Exporters reach a compose service on a port it listens on.
	for id, cfg := range c.Exporters {
		ep, _ := cfg["endpoint"].(string)
		host, port, ok := endpointHostPort(ep)
		s, exists := compose.Services[host]
		if !ok || !exists || !slices.Contains(servicePorts(s), port) {
			t.Errorf("exporter %s: endpoint %q is not <compose service>:<port it listens on>", id, ep)
		}
	}
	// The roles send OTLP/gRPC to the collector's gRPC receiver.
	grpcPort := 0
	if otlp, ok := c.Receivers["otlp"]; ok {
		if protos, ok := otlp["protocols"].(map[string]any); ok {
			if g, ok := protos["grpc"].(map[string]any); ok {
				ep, _ := g["endpoint"].(string)
				_, grpcPort, _ = endpointHostPort(ep)
			}
		}
	}
	if grpcPort == 0 {
		t.Fatal("no otlp receiver with a grpc endpoint")
	}
	for _, name := range sortedKeys(compose.Services) {
		env := compose.Services[name].Environment
		ep, ok := env["OTEL_EXPORTER_OTLP_ENDPOINT"]
		if !ok {
			continue
		}
		host, port, ok := endpointHostPort(ep)
		if !ok || host != "otel-collector" || port != grpcPort {
			t.Errorf("service %s: OTEL_EXPORTER_OTLP_ENDPOINT %q, want http://otel-collector:%d", name, ep, grpcPort)
		}
		if env["OTEL_EXPORTER_OTLP_PROTOCOL"] != "grpc" {
			t.Errorf("service %s: OTEL_EXPORTER_OTLP_PROTOCOL %q, want grpc (the endpoint is the gRPC port)", name, env["OTEL_EXPORTER_OTLP_PROTOCOL"])
		}
		if env["OTEL_TRACES_EXPORTER"] != "otlp" || !strings.HasPrefix(env["OTEL_SERVICE_NAME"], "streamprofile-") {
			t.Errorf("service %s: want OTEL_TRACES_EXPORTER=otlp and OTEL_SERVICE_NAME=streamprofile-<role>", name)
		}
	}
	// The health_check extension's port is reachable for probes.
	if hc, ok := c.Extensions["health_check"]; ok {
		ep, _ := hc["endpoint"].(string)
		if _, port, ok := endpointHostPort(ep); !ok || !slices.Contains(collector.Expose, strconv.Itoa(port)) {
			t.Errorf("health_check endpoint %q: port not exposed by the otel-collector service", ep)
		}
	}
}
