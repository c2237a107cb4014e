package deploy

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"
)

const (
	prometheusConfig = "deploy/prometheus/prometheus.yml"
	alertRules       = "deploy/prometheus/alerts.yml"
)

type promConfig struct {
	Global struct {
		ScrapeInterval     string `yaml:"scrape_interval"`
		ScrapeTimeout      string `yaml:"scrape_timeout"`
		EvaluationInterval string `yaml:"evaluation_interval"`
	} `yaml:"global"`
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string          `yaml:"targets"`
			Labels  map[string]string `yaml:"labels"`
		} `yaml:"static_configs"`
		DNSSDConfigs []struct {
			Names           []string `yaml:"names"`
			Type            string   `yaml:"type"`
			Port            int      `yaml:"port"`
			RefreshInterval string   `yaml:"refresh_interval"`
		} `yaml:"dns_sd_configs"`
	} `yaml:"scrape_configs"`
}

type promRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

var promDurationFullRE = regexp.MustCompile(`^((\d+)y)?((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?$`)

// parsePromDuration parses a Prometheus duration ("1h30m", "5m", "1d").
func parsePromDuration(s string) (time.Duration, error) {
	m := promDurationFullRE.FindStringSubmatch(s)
	if s == "" || m == nil {
		return 0, fmt.Errorf("duration %q: want a Prometheus duration such as 5m or 1h30m", s)
	}
	units := []time.Duration{365 * 24 * time.Hour, 7 * 24 * time.Hour, 24 * time.Hour, time.Hour, time.Minute, time.Second, time.Millisecond}
	var d time.Duration
	for i, u := range units {
		if v := m[2+2*i]; v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n > int64((1<<62)/u) {
				return 0, fmt.Errorf("duration %q out of range", s)
			}
			d += time.Duration(n) * u
		}
	}
	return d, nil
}

func TestParsePromDuration(t *testing.T) {
	tests := map[string]time.Duration{"5m": 5 * time.Minute, "1h30m": 90 * time.Minute, "1d": 24 * time.Hour, "15s": 15 * time.Second, "100ms": 100 * time.Millisecond, "0s": 0}
	for in, want := range tests {
		if got, err := parsePromDuration(in); err != nil || got != want {
			t.Errorf("parsePromDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "5", "m", "1m1h", "5 m", "-5m", "1.5h"} {
		if _, err := parsePromDuration(bad); err == nil {
			t.Errorf("parsePromDuration(%q): no error", bad)
		}
	}
}

func FuzzParsePromDuration(f *testing.F) {
	for _, s := range []string{"5m", "1h30m", "1y2w3d4h5m6s7ms", "99999999999999999999y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parsePromDuration(s)
		if err == nil && d < 0 {
			t.Fatalf("parsePromDuration(%q) = %v", s, d)
		}
	})
}

func loadPromConfig(t testing.TB) *promConfig {
	t.Helper()
	var c promConfig
	readYAMLStrict(t, prometheusConfig, &c)
	return &c
}

// jobs returns the scrape job names.
func (c *promConfig) jobs() []string {
	var jobs []string
	for _, sc := range c.ScrapeConfigs {
		jobs = append(jobs, sc.JobName)
	}
	return jobs
}

// servicePorts returns the ports a compose service listens on inside the
// compose network: its admin port (STREAMPROFILE_ADMIN_ADDR), expose and
// the container side of ports.
func servicePorts(s *composeService) []int {
	var ports []int
	if addr, ok := s.Environment["STREAMPROFILE_ADMIN_ADDR"]; ok {
		if n, err := parsePortNumber(addr[strings.LastIndex(addr, ":")+1:]); err == nil {
			ports = append(ports, n)
		}
	}
	for _, e := range s.Expose {
		if n, err := parsePortNumber(e); err == nil {
			ports = append(ports, n)
		}
	}
	for _, p := range s.Ports {
		if cp, err := parseComposePort(p); err == nil {
			ports = append(ports, cp.Container)
		}
	}
	return ports
}

func TestPrometheusConfig(t *testing.T) {
	c := loadPromConfig(t)
	compose := loadCompose(t)
	scrape, err := parsePromDuration(c.Global.ScrapeInterval)
	if err != nil {
		t.Error(err)
	}
	timeout, err := parsePromDuration(c.Global.ScrapeTimeout)
	if err != nil {
		t.Error(err)
	}
	if timeout > scrape {
		t.Errorf("scrape_timeout %s exceeds scrape_interval %s", c.Global.ScrapeTimeout, c.Global.ScrapeInterval)
	}
	if _, err := parsePromDuration(c.Global.EvaluationInterval); err != nil {
		t.Error(err)
	}
	prom := compose.Services["prometheus"]
	for _, rf := range c.RuleFiles {
		host, ok := prom.hostPath(rf)
		if !ok {
			t.Errorf("rule file %s is not mounted into the prometheus service", rf)
		} else if host != "./"+alertRules && host != alertRules {
			t.Errorf("rule file %s comes from %s, want %s", rf, host, alertRules)
		}
	}
	if host, ok := prom.hostPath("/etc/prometheus/prometheus.yml"); !ok || path.Clean(host) != prometheusConfig {
		t.Errorf("prometheus.yml is mounted from %q, want %s", host, prometheusConfig)
	}
	if !slices.Contains(prom.Command, "--config.file=/etc/prometheus/prometheus.yml") {
		t.Errorf("prometheus command %q does not load /etc/prometheus/prometheus.yml", prom.Command)
	}
	seen := map[string]bool{}
	for _, sc := range c.ScrapeConfigs {
		if seen[sc.JobName] {
			t.Errorf("job %s defined twice", sc.JobName)
		}
		seen[sc.JobName] = true
		check := func(host string, port int) {
			if host == "localhost" && sc.JobName == "prometheus" {
				return
			}
			s, ok := compose.Services[host]
			if !ok {
				t.Errorf("job %s: target host %q is not a compose service", sc.JobName, host)
				return
			}
			if !slices.Contains(servicePorts(s), port) {
				t.Errorf("job %s: service %s does not listen on %d (ports %v)", sc.JobName, host, port, servicePorts(s))
			}
			if s.replicas() > 1 && len(sc.DNSSDConfigs) == 0 {
				t.Errorf("job %s: service %s has %d replicas; a static target reaches one of them, use dns_sd_configs", sc.JobName, host, s.replicas())
			}
		}
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				host, portStr, ok := strings.Cut(target, ":")
				port, err := parsePortNumber(portStr)
				if !ok || err != nil {
					t.Errorf("job %s: target %q: want host:port", sc.JobName, target)
					continue
				}
				check(host, port)
			}
		}
		for _, dns := range sc.DNSSDConfigs {
			if dns.Type != "A" {
				t.Errorf("job %s: dns_sd type %q, want A (compose DNS has no SRV records)", sc.JobName, dns.Type)
			}
			for _, n := range dns.Names {
				check(n, dns.Port)
			}
		}
	}
	// Every streamprofile role in compose is scraped by the job named after it.
	for _, name := range sortedKeys(compose.Services) {
		s := compose.Services[name]
		if _, ok := s.Environment["STREAMPROFILE_ADMIN_ADDR"]; ok && !seen["streamprofile-"+name] {
			t.Errorf("role %s serves metrics but no job streamprofile-%s scrapes it", name, name)
		}
	}
}

// promTemplateFuncs are the functions Prometheus offers in alert templates
// (only their names matter here: the templates are parsed, not executed).
func promTemplateFuncs() template.FuncMap {
	f := template.FuncMap{}
	for _, name := range []string{
		"args", "externalURL", "first", "graphLink", "humanize", "humanize1024", "humanizeDuration",
		"humanizePercentage", "humanizeTimestamp", "label", "match", "pathPrefix", "query", "reReplaceAll",
		"safeHtml", "sortByLabel", "stripDomain", "stripPort", "strvalue", "tableLink", "title", "toDuration",
		"toLower", "toTime", "toUpper", "urlQueryEscape", "value", "parseDuration", "now",
	} {
		f[name] = func(...any) any { return nil }
	}
	return f
}

var alertNameRE = regexp.MustCompile(`^Streamprofile[A-Z][A-Za-z0-9]+$`)

func TestAlertRules(t *testing.T) {
	var rules promRules
	readYAMLStrict(t, alertRules, &rules)
	contract, err := LoadContract()
	if err != nil {
		t.Fatal(err)
	}
	pc := promChecker{contract: contract, jobs: loadPromConfig(t).jobs()}
	groups := map[string]bool{}
	alerts := map[string]bool{}
	used := map[string]bool{}
	for _, g := range rules.Groups {
		if g.Name == "" || groups[g.Name] {
			t.Errorf("group name %q empty or repeated", g.Name)
		}
		groups[g.Name] = true
		for _, r := range g.Rules {
			where := fmt.Sprintf("alert %s", r.Alert)
			if !alertNameRE.MatchString(r.Alert) {
				t.Errorf("%s: want a CamelCase name starting with Streamprofile", where)
			}
			if alerts[r.Alert] {
				t.Errorf("%s: defined twice", where)
			}
			alerts[r.Alert] = true
			for _, err := range pc.check(r.Expr) {
				t.Errorf("%s: expr: %v", where, err)
			}
			if a, err := analyzePromQL(r.Expr); err == nil {
				for _, s := range a.selectors {
					used[s.metric] = true
				}
			}
			if r.For != "" {
				if _, err := parsePromDuration(r.For); err != nil {
					t.Errorf("%s: for: %v", where, err)
				}
			}
			if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" && sev != "info" {
				t.Errorf("%s: severity %q, want critical, warning or info", where, sev)
			}
			for _, key := range []string{"summary", "description"} {
				text := r.Annotations[key]
				if strings.TrimSpace(text) == "" {
					t.Errorf("%s: no %s annotation", where, key)
					continue
				}
				// Prometheus prepends variable definitions to the template.
				tmpl := "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$value := .Value}}" + text
				if _, err := template.New(key).Funcs(promTemplateFuncs()).Parse(tmpl); err != nil {
					t.Errorf("%s: %s is not a valid template: %v", where, key, err)
				}
			}
			for key := range r.Annotations {
				if key != "summary" && key != "description" && key != "runbook_url" {
					t.Errorf("%s: annotation %q", where, key)
				}
			}
		}
	}
	// The conditions the deployment must alert on, by the series they read.
	for cond, series := range map[string]string{
		"consumer lag growing":     "streamprofile_consumer_lag",
		"dead-letter rate":         "streamprofile_events_dead_lettered_total",
		"model rollback":           "streamprofile_model_rollbacks_total",
		"pipeline or target down":  "up",
		"p99 end-to-end latency":   "streamprofile_e2e_latency_seconds_bucket",
		"ingest stalled with lag":  "streamprofile_events_consumed_total",
		"slow Redis flushes (p99)": "streamprofile_redis_flush_seconds_bucket",
	} {
		if !used[series] {
			t.Errorf("no alert reads %s (%s)", series, cond)
		}
	}
}
