package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const (
	grafanaDatasources = "deploy/grafana/provisioning/datasources/datasources.yaml"
	grafanaProviders   = "deploy/grafana/provisioning/dashboards/dashboards.yaml"
	grafanaDashboard   = "deploy/grafana/dashboards/streamprofile.json"
)

type grafanaDatasourceFile struct {
	APIVersion  int `yaml:"apiVersion"`
	Datasources []struct {
		Name      string         `yaml:"name"`
		UID       string         `yaml:"uid"`
		Type      string         `yaml:"type"`
		Access    string         `yaml:"access"`
		URL       string         `yaml:"url"`
		IsDefault bool           `yaml:"isDefault"`
		Editable  bool           `yaml:"editable"`
		JSONData  map[string]any `yaml:"jsonData"`
	} `yaml:"datasources"`
}

type grafanaProviderFile struct {
	APIVersion int `yaml:"apiVersion"`
	Providers  []struct {
		Name                  string `yaml:"name"`
		OrgID                 int    `yaml:"orgId"`
		Folder                string `yaml:"folder"`
		Type                  string `yaml:"type"`
		DisableDeletion       bool   `yaml:"disableDeletion"`
		AllowUIUpdates        bool   `yaml:"allowUiUpdates"`
		UpdateIntervalSeconds int    `yaml:"updateIntervalSeconds"`
		Options               struct {
			Path                      string `yaml:"path"`
			FoldersFromFilesStructure bool   `yaml:"foldersFromFilesStructure"`
		} `yaml:"options"`
	} `yaml:"providers"`
}

// The dashboard model: decoded with DisallowUnknownFields, so a misspelt
// key is an error. It covers the keys streamprofile.json uses.
type grafanaDS struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaTarget struct {
	RefID        string     `json:"refId"`
	Datasource   *grafanaDS `json:"datasource"`
	Expr         string     `json:"expr"`
	LegendFormat string     `json:"legendFormat"`
	Range        bool       `json:"range"`
	Instant      bool       `json:"instant"`
}

type grafanaPanel struct {
	ID          int        `json:"id"`
	Type        string     `json:"type"`
	Title       string     `json:"title"`
	Description string     `json:"description"`
	Datasource  *grafanaDS `json:"datasource"`
	GridPos     struct {
		X int `json:"x"`
		Y int `json:"y"`
		W int `json:"w"`
		H int `json:"h"`
	} `json:"gridPos"`
	FieldConfig json.RawMessage `json:"fieldConfig"`
	Options     json.RawMessage `json:"options"`
	Targets     []grafanaTarget `json:"targets"`
}

type grafanaDashboardJSON struct {
	UID          string   `json:"uid"`
	Title        string   `json:"title"`
	Description  string   `json:"description"`
	Tags         []string `json:"tags"`
	Timezone     string   `json:"timezone"`
	Editable     bool     `json:"editable"`
	GraphTooltip int      `json:"graphTooltip"`
	Schema       int      `json:"schemaVersion"`
	Version      int      `json:"version"`
	Refresh      string   `json:"refresh"`
	Time         struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"time"`
	Annotations struct {
		List []struct {
			BuiltIn     int        `json:"builtIn"`
			Datasource  *grafanaDS `json:"datasource"`
			Enable      bool       `json:"enable"`
			Hide        bool       `json:"hide"`
			IconColor   string     `json:"iconColor"`
			Name        string     `json:"name"`
			Type        string     `json:"type"`
			Expr        string     `json:"expr"`
			Step        string     `json:"step"`
			TitleFormat string     `json:"titleFormat"`
			TextFormat  string     `json:"textFormat"`
		} `json:"list"`
	} `json:"annotations"`
	Templating struct {
		List []json.RawMessage `json:"list"`
	} `json:"templating"`
	Panels []grafanaPanel `json:"panels"`
}

func loadDashboard(t testing.TB) *grafanaDashboardJSON {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(readRepoFile(t, grafanaDashboard)))
	dec.DisallowUnknownFields()
	var d grafanaDashboardJSON
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", grafanaDashboard, err)
	}
	if dec.More() {
		t.Fatalf("%s: trailing data", grafanaDashboard)
	}
	return &d
}

// prometheusDatasource returns the provisioned Prometheus datasource's uid
// and checks the provisioning file.
func prometheusDatasource(t *testing.T) string {
	t.Helper()
	var f grafanaDatasourceFile
	readYAMLStrict(t, grafanaDatasources, &f)
	if f.APIVersion != 1 {
		t.Errorf("%s: apiVersion %d, want 1", grafanaDatasources, f.APIVersion)
	}
	compose := loadCompose(t)
	uids := map[string]bool{}
	defaults, prom := 0, ""
	for _, ds := range f.Datasources {
		if ds.UID == "" || uids[ds.UID] {
			t.Errorf("datasource %s: uid %q empty or repeated", ds.Name, ds.UID)
		}
		uids[ds.UID] = true
		if ds.IsDefault {
			defaults++
		}
		if ds.Type == "prometheus" {
			prom = ds.UID
		}
		// The URL names a compose service and a port it listens on.
		host, port, ok := strings.Cut(strings.TrimPrefix(ds.URL, "http://"), ":")
		s, exists := compose.Services[host]
		n, err := parsePortNumber(port)
		if !ok || !exists || err != nil || !slices.Contains(servicePorts(s), n) {
			t.Errorf("datasource %s: url %q is not http://<compose service>:<its port>", ds.Name, ds.URL)
		}
	}
	if defaults != 1 {
		t.Errorf("%d default datasources, want 1", defaults)
	}
	if prom == "" {
		t.Fatal("no Prometheus datasource is provisioned")
	}
	return prom
}

func TestGrafanaProvisioning(t *testing.T) {
	prometheusDatasource(t)
	var f grafanaProviderFile
	readYAMLStrict(t, grafanaProviders, &f)
	grafana := loadCompose(t).Services["grafana"]
	for dir, want := range map[string]string{
		"/etc/grafana/provisioning/datasources": path.Dir(grafanaDatasources),
		"/etc/grafana/provisioning/dashboards":  path.Dir(grafanaProviders),
	} {
		if host, ok := grafana.hostPath(dir); !ok || host != want {
			t.Errorf("grafana: %s is mounted from %q, want %s", dir, host, want)
		}
	}
	if len(f.Providers) == 0 {
		t.Fatal("no dashboard provider")
	}
	for _, p := range f.Providers {
		if p.Type != "file" {
			t.Errorf("provider %s: type %q, want file", p.Name, p.Type)
		}
		host, ok := grafana.hostPath(p.Options.Path)
		if !ok {
			t.Errorf("provider %s: path %s is not mounted into the grafana service", p.Name, p.Options.Path)
			continue
		}
		if host != path.Dir(grafanaDashboard) {
			t.Errorf("provider %s: path %s holds %s, want %s", p.Name, p.Options.Path, host, path.Dir(grafanaDashboard))
		}
	}
	home := grafana.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
	if host, ok := grafana.hostPath(home); !ok || host != grafanaDashboard {
		t.Errorf("home dashboard %q resolves to %q, want %s", home, host, grafanaDashboard)
	}
}

var grafanaUIDRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,40}$`)

func TestGrafanaDashboard(t *testing.T) {
	promUID := prometheusDatasource(t)
	d := loadDashboard(t)
	contract, err := LoadContract()
	if err != nil {
		t.Fatal(err)
	}
	pc := promChecker{contract: contract, jobs: loadPromConfig(t).jobs(), allowVars: true}
	if !grafanaUIDRE.MatchString(d.UID) || d.Title == "" {
		t.Errorf("dashboard uid %q / title %q", d.UID, d.Title)
	}
	if d.Editable {
		t.Error("a provisioned dashboard should not be editable (edits would be lost); change the JSON in the repository")
	}
	checkDS := func(where string, ds *grafanaDS) {
		if ds == nil || ds.UID != promUID || ds.Type != "prometheus" {
			t.Errorf("%s: datasource %+v, want the provisioned prometheus uid %q", where, ds, promUID)
		}
	}
	used := map[string]bool{}
	exprs := map[string]string{} // expr → panel title
	check := func(where, expr string) {
		for _, err := range pc.check(expr) {
			t.Errorf("%s: %v", where, err)
		}
		if a, err := analyzePromQL(expr); err == nil {
			for _, s := range a.selectors {
				used[s.metric] = true
			}
		}
	}
	ids := map[int]string{}
	type rect struct{ X, Y, W, H, id int }
	var placed []rect
	for _, p := range d.Panels {
		where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID <= 0 {
			t.Errorf("%s: id must be positive", where)
		}
		if other, dup := ids[p.ID]; dup {
			t.Errorf("%s: id %d also used by %q", where, p.ID, other)
		}
		ids[p.ID] = p.Title
		if p.Title == "" || p.Description == "" {
			t.Errorf("%s: needs a title and a description", where)
		}
		if p.Type != "timeseries" && p.Type != "stat" {
			t.Errorf("%s: type %q, want timeseries or stat", where, p.Type)
		}
		g := p.GridPos
		if g.W < 1 || g.H < 1 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("%s: gridPos %+v outside the 24-column grid", where, g)
		}
		for _, q := range placed {
			if g.X < q.X+q.W && q.X < g.X+g.W && g.Y < q.Y+q.H && q.Y < g.Y+g.H {
				t.Errorf("%s overlaps panel %d", where, q.id)
			}
		}
		placed = append(placed, rect{g.X, g.Y, g.W, g.H, p.ID})
		checkDS(where, p.Datasource)
		if len(p.Targets) == 0 {
			t.Errorf("%s: no queries", where)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			tw := where + " target " + tg.RefID
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("%s: refId empty or repeated", tw)
			}
			refs[tg.RefID] = true
			checkDS(tw, tg.Datasource)
			check(tw, tg.Expr)
			exprs[tg.Expr] = p.Title
		}
		for _, raw := range []json.RawMessage{p.FieldConfig, p.Options} {
			var v map[string]any
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Errorf("%s: fieldConfig/options: %v", where, err)
			}
		}
	}
	for _, a := range d.Annotations.List {
		if a.BuiltIn == 1 {
			continue
		}
		checkDS("annotation "+a.Name, a.Datasource)
		check("annotation "+a.Name, a.Expr)
	}
	// The dashboard shows every metric of the contract.
	for _, m := range contract.Metrics {
		if !slices.ContainsFunc(m.Series(), func(s string) bool { return used[s] }) {
			t.Errorf("no panel shows %s", m.Name)
		}
	}
	// The views the deployment was asked for.
	required := map[string]*regexp.Regexp{
		"latency p50":                regexp.MustCompile(`histogram_quantile\(0\.5, .*streamprofile_e2e_latency_seconds_bucket`),
		"latency p99":                regexp.MustCompile(`histogram_quantile\(0\.99, .*streamprofile_e2e_latency_seconds_bucket`),
		"lag per partition":          regexp.MustCompile(`by \([^)]*partition[^)]*\) \(streamprofile_consumer_lag\)`),
		"DLQ by reason":              regexp.MustCompile(`by \(reason\) \(rate\(streamprofile_events_dead_lettered_total`),
		"Redis flush latency":        regexp.MustCompile(`histogram_quantile\(0\.99, .*streamprofile_redis_flush_seconds_bucket`),
		"champion version per task":  regexp.MustCompile(`by \(task\) \(streamprofile_model_champion_version\)`),
		"prequential AUC per task":   regexp.MustCompile(`by \(task, model\) \(streamprofile_model_prequential_auc\)`),
		"segment sizes":              regexp.MustCompile(`by \(segment\) \(streamprofile_segment_members\)`),
		"triggers emitted by kind":   regexp.MustCompile(`by \(kind\) \(rate\(streamprofile_triggers_emitted_total`),
		"triggers suppressed reason": regexp.MustCompile(`by \(kind, reason\) \(rate\(streamprofile_triggers_suppressed_total`),
	}
	for what, re := range required {
		if !slices.ContainsFunc(sortedKeys(exprs), re.MatchString) {
			t.Errorf("no query shows %s (want a match for %s)", what, re)
		}
	}
}

// TestGrafanaDashboardFormatted keeps the JSON diff-friendly: the file is
// what json.MarshalIndent with two spaces produces, so edits exported from
// the UI are reformatted before they are committed.
func TestGrafanaDashboardFormatted(t *testing.T) {
	raw := readRepoFile(t, grafanaDashboard)
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(raw), "", "  "); err != nil {
		t.Fatal(err)
	}
	buf.WriteByte('\n')
	if !bytes.Equal(buf.Bytes(), raw) {
		t.Errorf("%s is not indented with two spaces and newline-terminated; run: python3 -m json.tool --indent 2", grafanaDashboard)
	}
}
