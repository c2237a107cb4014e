package deploy

import (
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const composeFileName = "docker-compose.yml"

// The compose model: only the keys docker-compose.yml uses. Decoding is
// strict, so a key outside this model (a typo such as `depend_on`, or a new
// key) fails TestComposeParses until it is added here.
type composeFile struct {
	Name       string                     `yaml:"name"`
	Services   map[string]*composeService `yaml:"services"`
	Volumes    map[string]*composeVolume  `yaml:"volumes"`
	Extensions map[string]yaml.Node       `yaml:",inline"`
}

type composeVolume struct {
	Driver string `yaml:"driver"`
}

type composeService struct {
	Image       string                       `yaml:"image"`
	Build       *composeBuild                `yaml:"build"`
	Hostname    string                       `yaml:"hostname"`
	Command     []string                     `yaml:"command"`
	Entrypoint  []string                     `yaml:"entrypoint"`
	Environment map[string]string            `yaml:"environment"`
	Ports       []string                     `yaml:"ports"`
	Expose      []string                     `yaml:"expose"`
	Volumes     []string                     `yaml:"volumes"`
	Tmpfs       []string                     `yaml:"tmpfs"`
	DependsOn   map[string]composeDependency `yaml:"depends_on"`
	Healthcheck *composeHealthcheck          `yaml:"healthcheck"`
	Deploy      *composeDeploy               `yaml:"deploy"`
	Restart     string                       `yaml:"restart"`
	ReadOnly    bool                         `yaml:"read_only"`
	CapDrop     []string                     `yaml:"cap_drop"`
	SecurityOpt []string                     `yaml:"security_opt"`
	User        string                       `yaml:"user"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

type composeDependency struct {
	Condition string `yaml:"condition"`
}

type composeHealthcheck struct {
	Test        []string `yaml:"test"`
	Interval    string   `yaml:"interval"`
	Timeout     string   `yaml:"timeout"`
	Retries     int      `yaml:"retries"`
	StartPeriod string   `yaml:"start_period"`
}

type composeDeploy struct {
	Replicas *int `yaml:"replicas"`
}

// replicas returns the number of containers compose starts for s.
func (s *composeService) replicas() int {
	if s.Deploy != nil && s.Deploy.Replicas != nil {
		return *s.Deploy.Replicas
	}
	return 1
}

// isRole reports whether s runs the streamprofile image built from the
// repository's Dockerfile.
func (s *composeService) isRole() bool {
	return s.Build != nil && (s.Build.Dockerfile == "Dockerfile" || s.Build.Dockerfile == "") && s.Build.Context == "."
}

// subcommand is the streamprofile subcommand a role service runs.
func (s *composeService) subcommand() string {
	if len(s.Command) == 0 {
		return ""
	}
	return s.Command[0]
}

// composeMount is one parsed `volumes` entry of a service.
type composeMount struct {
	Source   string // "./..." for a bind mount, else a named volume
	Target   string
	ReadOnly bool
	Bind     bool
}

func parseComposeMount(s string) (composeMount, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return composeMount{}, fmt.Errorf("volume %q: want SOURCE:TARGET[:MODE]", s)
	}
	m := composeMount{Source: parts[0], Target: parts[1]}
	if len(parts) == 3 {
		switch parts[2] {
		case "ro":
			m.ReadOnly = true
		case "rw":
		default:
			return composeMount{}, fmt.Errorf("volume %q: mode %q, want ro or rw", s, parts[2])
		}
	}
	m.Bind = strings.HasPrefix(m.Source, ".") || strings.HasPrefix(m.Source, "/") || strings.HasPrefix(m.Source, "~")
	if !path.IsAbs(m.Target) {
		return composeMount{}, fmt.Errorf("volume %q: target must be an absolute container path", s)
	}
	return m, nil
}

// hostPath maps a container path of service s to the repository-relative
// path of the bind-mounted file or directory that provides it, if any.
func (s *composeService) hostPath(containerPath string) (string, bool) {
	best, bestLen := "", -1
	for _, v := range s.Volumes {
		m, err := parseComposeMount(v)
		if err != nil || !m.Bind {
			continue
		}
		if containerPath == m.Target || strings.HasPrefix(containerPath, m.Target+"/") {
			if len(m.Target) > bestLen {
				best = path.Join(m.Source, strings.TrimPrefix(containerPath, m.Target))
				bestLen = len(m.Target)
			}
		}
	}
	return path.Clean(best), bestLen >= 0
}

// composePort is one parsed `ports` entry.
type composePort struct {
	HostIP    string
	Host      int // 0: none published
	Container int
}

func parseComposePort(s string) (composePort, error) {
	parts := strings.Split(s, ":")
	var p composePort
	var host, ctr string
	switch len(parts) {
	case 1:
		ctr = parts[0]
	case 2:
		host, ctr = parts[0], parts[1]
	case 3:
		p.HostIP, host, ctr = parts[0], parts[1], parts[2]
	default:
		return p, fmt.Errorf("port %q: want [[IP:]HOST:]CONTAINER", s)
	}
	var err error
	if p.Container, err = parsePortNumber(strings.TrimSuffix(ctr, "/tcp")); err != nil {
		return p, fmt.Errorf("port %q: %v", s, err)
	}
	if host != "" {
		if p.Host, err = parsePortNumber(host); err != nil {
			return p, fmt.Errorf("port %q: %v", s, err)
		}
	}
	return p, nil
}

func parsePortNumber(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%q is not a port number", s)
	}
	return n, nil
}

// loadCompose parses docker-compose.yml strictly.
func loadCompose(t testing.TB) *composeFile {
	t.Helper()
	var c composeFile
	readYAMLStrict(t, composeFileName, &c)
	if len(c.Services) == 0 {
		t.Fatalf("%s: no services", composeFileName)
	}
	return &c
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestComposeParses(t *testing.T) {
	c := loadCompose(t)
	if c.Name != "streamprofile" {
		t.Errorf("project name %q, want streamprofile", c.Name)
	}
	for k := range c.Extensions {
		if !strings.HasPrefix(k, "x-") {
			t.Errorf("top-level key %q: not modelled by this test and not an x- extension", k)
		}
	}
}

// TestComposeServices is the list of what the stack must run.
func TestComposeServices(t *testing.T) {
	c := loadCompose(t)
	images := map[string]string{ // service → image repository
		"kafka":          "apache/kafka",
		"topic-init":     "apache/kafka",
		"redis":          "redis",
		"otel-collector": "otel/opentelemetry-collector-contrib",
		"jaeger":         "jaegertracing/jaeger",
		"prometheus":     "prom/prometheus",
		"grafana":        "grafana/grafana",
	}
	for name, repo := range images {
		s, ok := c.Services[name]
		if !ok {
			t.Errorf("no service %q", name)
			continue
		}
		if r, _, _ := strings.Cut(s.Image, ":"); r != repo {
			t.Errorf("service %s: image %q, want %s:<version>", name, s.Image, repo)
		}
	}
	if got := c.Services["kafka"].Image; got != "apache/kafka:4.1.1" {
		t.Errorf("kafka image %q, want apache/kafka:4.1.1 (the version scripts/testenv.sh tests against)", got)
	}
	roles := map[string]string{"ingest": "ingest", "trainer": "train", "score": "score", "serve": "serve", "replay": "replay"}
	for name, sub := range roles {
		s, ok := c.Services[name]
		if !ok {
			t.Errorf("no service %q", name)
			continue
		}
		if !s.isRole() {
			t.Errorf("service %s: not built from the repository's Dockerfile", name)
		}
		if s.subcommand() != sub {
			t.Errorf("service %s: command %q, want [%q ...]", name, s.Command, sub)
		}
	}
	if n := c.Services["ingest"].replicas(); n != 2 {
		t.Errorf("ingest: %d replicas, want 2", n)
	}
	if r := c.Services["redis"]; !slices.Contains(r.Command, "--appendonly") || r.Command[slices.Index(r.Command, "--appendonly")+1] != "yes" {
		t.Errorf("redis: command %q, want --appendonly yes", r.Command)
	}
}

var (
	versionTagRE = regexp.MustCompile(`^v?\d+\.\d+`)
	digestRE     = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)
)

// imagePinned reports why an image reference is not pinned to a version,
// or "" when it is: a digest, or a tag that names at least major.minor.
func imagePinned(ref string) string {
	if digestRE.MatchString(ref) {
		return ""
	}
	name, tag, ok := strings.Cut(ref, ":")
	if !ok || tag == "" {
		return "no tag"
	}
	if strings.Contains(tag, "/") || strings.Contains(name, "@") {
		return "malformed reference"
	}
	if tag == "latest" || !versionTagRE.MatchString(tag) {
		return fmt.Sprintf("tag %q names no major.minor version", tag)
	}
	return ""
}

func TestImagePinned(t *testing.T) {
	tests := []struct {
		ref    string
		pinned bool
	}{
		{"apache/kafka:4.1.1", true},
		{"prom/prometheus:v3.13.2", true},
		{"redis:7.4.6-alpine", true},
		{"redis:7.4-alpine", true},
		{"redis@sha256:" + strings.Repeat("ab", 32), true},
		{"redis", false},
		{"redis:latest", false},
		{"redis:alpine", false},
		{"redis:7", false},
		{"redis:", false},
	}
	for _, tt := range tests {
		if got := imagePinned(tt.ref) == ""; got != tt.pinned {
			t.Errorf("imagePinned(%q) = %q, want pinned=%v", tt.ref, imagePinned(tt.ref), tt.pinned)
		}
	}
}

func TestComposeImagesPinned(t *testing.T) {
	c := loadCompose(t)
	for _, name := range sortedKeys(c.Services) {
		s := c.Services[name]
		switch {
		case s.Image == "" && s.Build == nil:
			t.Errorf("service %s: neither image nor build", name)
		case s.Build != nil:
			if s.Build.Context != "." || s.Build.Dockerfile != "Dockerfile" {
				t.Errorf("service %s: build %+v, want context . and Dockerfile", name, *s.Build)
			}
			if _, tag, _ := strings.Cut(s.Image, ":"); tag == "" || tag == "latest" {
				t.Errorf("service %s: built image %q needs a tag other than latest", name, s.Image)
			}
		default:
			if why := imagePinned(s.Image); why != "" {
				t.Errorf("service %s: image %q is not pinned: %s", name, s.Image, why)
			}
		}
	}
}

func TestComposePorts(t *testing.T) {
	c := loadCompose(t)
	seen := map[int]string{}
	for _, name := range sortedKeys(c.Services) {
		s := c.Services[name]
		for _, spec := range s.Ports {
			p, err := parseComposePort(spec)
			if err != nil {
				t.Errorf("service %s: %v", name, err)
				continue
			}
			if p.Host == 0 {
				continue
			}
			if p.HostIP != "127.0.0.1" {
				t.Errorf("service %s: port %q is published on every interface; bind it to 127.0.0.1", name, spec)
			}
			if s.replicas() > 1 {
				t.Errorf("service %s: %d replicas cannot share host port %d", name, s.replicas(), p.Host)
			}
			if other, dup := seen[p.Host]; dup {
				t.Errorf("host port %d published by both %s and %s", p.Host, other, name)
			}
			seen[p.Host] = name
		}
		for _, e := range s.Expose {
			if _, err := parsePortNumber(e); err != nil {
				t.Errorf("service %s: expose: %v", name, err)
			}
		}
	}
}

func TestComposeDependsOn(t *testing.T) {
	c := loadCompose(t)
	for _, name := range sortedKeys(c.Services) {
		for _, dep := range sortedKeys(c.Services[name].DependsOn) {
			cond := c.Services[name].DependsOn[dep].Condition
			target, ok := c.Services[dep]
			if !ok {
				t.Errorf("service %s depends on unknown service %q", name, dep)
				continue
			}
			switch cond {
			case "service_started":
			case "service_healthy":
				if target.Healthcheck == nil {
					t.Errorf("service %s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
				}
			case "service_completed_successfully":
				if target.Restart != "no" {
					t.Errorf("service %s waits for %s to complete, but %s has restart %q (want \"no\")", name, dep, dep, target.Restart)
				}
			default:
				t.Errorf("service %s: depends_on %s: condition %q", name, dep, cond)
			}
		}
	}
	// No cycles: compose would refuse to start.
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	var visit func(string, []string)
	visit = func(n string, stack []string) {
		switch state[n] {
		case visiting:
			t.Errorf("depends_on cycle: %s", strings.Join(append(stack, n), " → "))
			return
		case done:
			return
		}
		state[n] = visiting
		if s, ok := c.Services[n]; ok {
			for _, d := range sortedKeys(s.DependsOn) {
				visit(d, append(stack, n))
			}
		}
		state[n] = done
	}
	for _, n := range sortedKeys(c.Services) {
		visit(n, nil)
	}
	// The roles start after the infrastructure is ready.
	for _, n := range []string{"ingest", "trainer", "score", "serve"} {
		deps := c.Services[n].DependsOn
		for dep, cond := range map[string]string{"kafka": "service_healthy", "redis": "service_healthy", "topic-init": "service_completed_successfully"} {
			if deps[dep].Condition != cond {
				t.Errorf("service %s: depends_on %s: condition %q, want %s", n, dep, deps[dep].Condition, cond)
			}
		}
	}
}

func TestComposeMounts(t *testing.T) {
	c := loadCompose(t)
	used := map[string]bool{}
	for _, name := range sortedKeys(c.Services) {
		for _, v := range c.Services[name].Volumes {
			m, err := parseComposeMount(v)
			if err != nil {
				t.Errorf("service %s: %v", name, err)
				continue
			}
			if !m.Bind {
				if _, ok := c.Volumes[m.Source]; !ok {
					t.Errorf("service %s: volume %q is not declared under top-level volumes", name, m.Source)
				}
				used[m.Source] = true
				continue
			}
			if !strings.HasPrefix(m.Source, "./") {
				t.Errorf("service %s: bind mount %q must be relative to the repository (./...)", name, v)
				continue
			}
			if !m.ReadOnly {
				t.Errorf("service %s: bind mount %q of repository files should be :ro", name, v)
			}
			if _, err := os.Stat(repoPath(t, m.Source)); err != nil {
				t.Errorf("service %s: mounted file %s does not exist in the repository", name, m.Source)
			}
		}
	}
	for _, v := range sortedKeys(c.Volumes) {
		if !used[v] {
			t.Errorf("volume %q is declared but no service mounts it", v)
		}
	}
}

// composeDuration parses a compose duration such as "10s" or "1m30s".
func composeDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("duration %q: want a positive Go duration such as 10s", s)
	}
	return d, nil
}

func TestComposeHealthchecks(t *testing.T) {
	c := loadCompose(t)
	for _, name := range sortedKeys(c.Services) {
		hc := c.Services[name].Healthcheck
		if hc == nil {
			continue
		}
		if len(hc.Test) < 2 || (hc.Test[0] != "CMD" && hc.Test[0] != "CMD-SHELL") {
			t.Errorf("service %s: healthcheck test %q, want [CMD, ...] or [CMD-SHELL, command]", name, hc.Test)
		}
		if hc.Test[0] == "CMD-SHELL" && len(hc.Test) != 2 {
			t.Errorf("service %s: CMD-SHELL takes one command string, got %q", name, hc.Test[1:])
		}
		var interval, timeout time.Duration
		var err error
		if interval, err = composeDuration(hc.Interval); err != nil {
			t.Errorf("service %s: healthcheck interval: %v", name, err)
		}
		if timeout, err = composeDuration(hc.Timeout); err != nil {
			t.Errorf("service %s: healthcheck timeout: %v", name, err)
		}
		if timeout > interval {
			t.Errorf("service %s: healthcheck timeout %s exceeds interval %s", name, timeout, interval)
		}
		if hc.StartPeriod != "" {
			if _, err := composeDuration(hc.StartPeriod); err != nil {
				t.Errorf("service %s: healthcheck start_period: %v", name, err)
			}
		}
		if hc.Retries < 1 {
			t.Errorf("service %s: healthcheck retries %d", name, hc.Retries)
		}
	}
	// Every service whose image has a shell or a client to probe with has a
	// healthcheck; the scratch-based images (streamprofile, the collector,
	// jaeger) cannot run one and are watched by Prometheus instead.
	for _, name := range []string{"kafka", "redis", "prometheus", "grafana"} {
		if c.Services[name].Healthcheck == nil {
			t.Errorf("service %s has no healthcheck", name)
		}
	}
}

func TestComposeRoleHardening(t *testing.T) {
	c := loadCompose(t)
	for _, name := range sortedKeys(c.Services) {
		s := c.Services[name]
		if !s.isRole() {
			continue
		}
		if !s.ReadOnly {
			t.Errorf("service %s: want read_only: true (the image needs no writable root)", name)
		}
		if !slices.Contains(s.CapDrop, "ALL") {
			t.Errorf("service %s: want cap_drop: [ALL]", name)
		}
		if !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
			t.Errorf("service %s: want security_opt no-new-privileges:true", name)
		}
		if u, _, _ := strings.Cut(s.User, ":"); u == "0" || u == "root" {
			t.Errorf("service %s: runs as root", name)
		}
		if len(s.Entrypoint) > 0 {
			t.Errorf("service %s: overrides the image's entrypoint", name)
		}
	}
}

// TestComposeNoInterpolation: compose expands $VAR and ${VAR} anywhere in
// the file. This file uses no variables, so every literal $ must be written
// $$; a single $ is a shell variable that compose would silently blank.
func TestComposeNoInterpolation(t *testing.T) {
	for i, line := range strings.Split(string(readRepoFile(t, composeFileName)), "\n") {
		if strings.Contains(strings.ReplaceAll(line, "$$", ""), "$") {
			t.Errorf("%s:%d: unescaped $ (compose interpolation): %s", composeFileName, i+1, strings.TrimSpace(line))
		}
	}
}

// kafkaListener is one NAME://HOST:PORT entry of a Kafka listener list.
type kafkaListener struct {
	Name, Host string
	Port       int
}

func parseKafkaListeners(s string) ([]kafkaListener, error) {
	var out []kafkaListener
	for _, l := range strings.Split(s, ",") {
		name, addr, ok := strings.Cut(strings.TrimSpace(l), "://")
		if !ok {
			return nil, fmt.Errorf("listener %q: want NAME://HOST:PORT", l)
		}
		i := strings.LastIndex(addr, ":")
		if i < 0 {
			return nil, fmt.Errorf("listener %q: no port", l)
		}
		port, err := parsePortNumber(addr[i+1:])
		if err != nil {
			return nil, fmt.Errorf("listener %q: %v", l, err)
		}
		out = append(out, kafkaListener{Name: name, Host: addr[:i], Port: port})
	}
	return out, nil
}

func listenerByName(ls []kafkaListener, name string) (kafkaListener, bool) {
	for _, l := range ls {
		if l.Name == name {
			return l, true
		}
	}
	return kafkaListener{}, false
}

// TestComposeKafkaListeners checks the KRaft single-node configuration for
// the mistakes that make a broker start but be unreachable.
func TestComposeKafkaListeners(t *testing.T) {
	c := loadCompose(t)
	k := c.Services["kafka"]
	env := k.Environment
	for _, key := range []string{"CLUSTER_ID", "KAFKA_NODE_ID", "KAFKA_PROCESS_ROLES", "KAFKA_LISTENERS", "KAFKA_ADVERTISED_LISTENERS",
		"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "KAFKA_CONTROLLER_LISTENER_NAMES", "KAFKA_CONTROLLER_QUORUM_VOTERS",
		"KAFKA_INTER_BROKER_LISTENER_NAME", "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_LOG_DIRS"} {
		if env[key] == "" {
			t.Errorf("kafka: %s is not set", key)
		}
	}
	if env["KAFKA_PROCESS_ROLES"] != "broker,controller" {
		t.Errorf("kafka: KAFKA_PROCESS_ROLES %q, want broker,controller (single-node KRaft)", env["KAFKA_PROCESS_ROLES"])
	}
	listeners, err := parseKafkaListeners(env["KAFKA_LISTENERS"])
	if err != nil {
		t.Fatal(err)
	}
	advertised, err := parseKafkaListeners(env["KAFKA_ADVERTISED_LISTENERS"])
	if err != nil {
		t.Fatal(err)
	}
	protocols := map[string]string{}
	for _, p := range strings.Split(env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"], ",") {
		name, proto, _ := strings.Cut(p, ":")
		protocols[name] = proto
	}
	for _, l := range listeners {
		if protocols[l.Name] == "" {
			t.Errorf("kafka: listener %s has no security protocol", l.Name)
		}
	}
	controller := env["KAFKA_CONTROLLER_LISTENER_NAMES"]
	for _, a := range advertised {
		l, ok := listenerByName(listeners, a.Name)
		if !ok {
			t.Errorf("kafka: advertised listener %s is not a listener", a.Name)
		} else if l.Port != a.Port {
			t.Errorf("kafka: listener %s listens on %d but advertises %d", a.Name, l.Port, a.Port)
		}
		if a.Name == controller {
			t.Errorf("kafka: the controller listener must not be advertised")
		}
	}
	if _, ok := listenerByName(advertised, env["KAFKA_INTER_BROKER_LISTENER_NAME"]); !ok {
		t.Errorf("kafka: inter-broker listener %q is not advertised", env["KAFKA_INTER_BROKER_LISTENER_NAME"])
	}
	ctl, ok := listenerByName(listeners, controller)
	if !ok {
		t.Fatalf("kafka: controller listener %q is not a listener", controller)
	}
	voter := fmt.Sprintf("%s@%s:%d", env["KAFKA_NODE_ID"], k.Hostname, ctl.Port)
	if env["KAFKA_CONTROLLER_QUORUM_VOTERS"] != voter {
		t.Errorf("kafka: KAFKA_CONTROLLER_QUORUM_VOTERS %q, want %q (node id @ hostname : controller port)", env["KAFKA_CONTROLLER_QUORUM_VOTERS"], voter)
	}
	// Published ports reach a listener advertised as localhost.
	for _, spec := range k.Ports {
		p, err := parseComposePort(spec)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, a := range advertised {
			found = found || (a.Port == p.Container && a.Host == "localhost" && p.Host == p.Container)
		}
		if !found {
			t.Errorf("kafka: published port %q matches no listener advertised as localhost:%d", spec, p.Host)
		}
	}
	// Every client in the compose network uses the listener advertised under
	// the service name.
	internal := ""
	for _, a := range advertised {
		if a.Host == "kafka" {
			internal = fmt.Sprintf("%s:%d", a.Host, a.Port)
		}
	}
	if internal == "" {
		t.Fatal("kafka: no listener is advertised as kafka:<port> for the compose network")
	}
	for _, name := range sortedKeys(c.Services) {
		s := c.Services[name]
		if b, ok := s.Environment["STREAMPROFILE_BROKERS"]; ok && b != internal {
			t.Errorf("service %s: STREAMPROFILE_BROKERS %q, want %q", name, b, internal)
		}
	}
	if !strings.Contains(strings.Join(c.Services["topic-init"].Command, " "), "--bootstrap-server "+internal) {
		t.Errorf("topic-init does not use --bootstrap-server %s", internal)
	}
	if !strings.Contains(k.Healthcheck.Test[len(k.Healthcheck.Test)-1], "--bootstrap-server localhost:") {
		t.Errorf("kafka: healthcheck should probe the broker inside its own container")
	}
}
