package deploy

import (
	"bufio"
	"bytes"
	_ "embed"
	"regexp"
	"slices"
	"strings"
)

//go:embed METRICS.md
var metricsMD []byte

// MetricType is the Prometheus type of a metric family.
type MetricType string

// The metric types the contract allows.
const (
	Counter   MetricType = "counter"
	Gauge     MetricType = "gauge"
	Histogram MetricType = "histogram"
)

// Roles are the streamprofile subcommands that serve metrics.
var roles = []string{"ingest", "train", "score", "serve"}

// Metric is one metric family of the contract.
type Metric struct {
	// Name is the family name as registered, e.g.
	// "streamprofile_events_consumed_total".
	Name string
	// Type is counter, gauge or histogram.
	Type MetricType
	// Labels are the labels the code sets, in table order. Never "le",
	// "quantile", "job" or "instance".
	Labels []string
	// Roles are the subcommands that expose the metric.
	Roles []string
	// Help is the table's one-line meaning.
	Help string
}

// Series returns the names of the series the family is exposed as: the
// name itself, or for a histogram its _bucket, _sum and _count series.
func (m Metric) Series() []string {
	if m.Type == Histogram {
		return []string{m.Name + "_bucket", m.Name + "_sum", m.Name + "_count"}
	}
	return []string{m.Name}
}

// HasLabel reports whether the code sets label l on the family.
func (m Metric) HasLabel(l string) bool { return slices.Contains(m.Labels, l) }

// Contract is the parsed METRICS.md.
type Contract struct {
	// Metrics in table order.
	Metrics []Metric
	// LabelValues holds the closed value sets of the labels that have one.
	LabelValues map[string][]string
}

// LoadContract parses the METRICS.md embedded in this package.
func LoadContract() (*Contract, error) { return ParseContract(metricsMD) }

// Metric returns the family with the given name.
func (c *Contract) Metric(name string) (Metric, bool) {
	for _, m := range c.Metrics {
		if m.Name == name {
			return m, true
		}
	}
	return Metric{}, false
}

// Series returns the family that exposes the named series, for example
// the histogram "x" for "x_bucket".
func (c *Contract) Series(series string) (Metric, bool) {
	for _, m := range c.Metrics {
		if slices.Contains(m.Series(), series) {
			return m, true
		}
	}
	return Metric{}, false
}

var (
	metricNameRE = regexp.MustCompile(`^streamprofile_[a-z]([a-z0-9_]*[a-z0-9])?$`)
	labelNameRE  = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	codeSpanRE   = regexp.MustCompile("`([^`]*)`")
)

// reservedLabels are set by Prometheus or by the histogram/summary types.
var reservedLabels = []string{"le", "quantile", "job", "instance"}

const (
	metricsHeader = "| Metric | Type | Labels | Role | Meaning |"
	valuesHeader  = "| Label | Values | Meaning |"
)

// ParseContract parses a metrics contract in the format of METRICS.md: a
// Markdown table with the header metricsHeader (one row per family) and
// optionally one with the header valuesHeader (closed label value sets).
// Lines outside these two tables are ignored. It returns a *ContractError
// for the first malformed row.
func ParseContract(md []byte) (*Contract, error) {
	c := &Contract{LabelValues: map[string][]string{}}
	var table string // "", "metrics" or "values"
	var sawMetrics, sawValues bool
	valueLine := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(md))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(text, "|") {
			table = ""
			continue
		}
		switch {
		case normalizeRow(text) == metricsHeader:
			if sawMetrics {
				return nil, contractErr(line, "second metrics table")
			}
			table, sawMetrics = "metrics", true
			continue
		case normalizeRow(text) == valuesHeader:
			if sawValues {
				return nil, contractErr(line, "second label values table")
			}
			table, sawValues = "values", true
			continue
		case isDelimiterRow(text):
			continue
		}
		cells, err := splitRow(text, line)
		if err != nil {
			return nil, err
		}
		switch table {
		case "metrics":
			m, err := parseMetricRow(cells, line)
			if err != nil {
				return nil, err
			}
			c.Metrics = append(c.Metrics, m)
		case "values":
			label, values, err := parseValuesRow(cells, line)
			if err != nil {
				return nil, err
			}
			if _, dup := c.LabelValues[label]; dup {
				return nil, contractErr(line, "label %q listed twice", label)
			}
			c.LabelValues[label] = values
			valueLine[label] = line
		default:
			return nil, contractErr(line, "table row outside the metrics and label values tables")
		}
	}
	if err := sc.Err(); err != nil {
		return nil, contractErr(0, "%v", err)
	}
	if len(c.Metrics) == 0 {
		return nil, contractErr(0, "no metrics table (header %q) or it is empty", metricsHeader)
	}
	series := map[string]string{}
	for _, m := range c.Metrics {
		for _, s := range m.Series() {
			if other, dup := series[s]; dup {
				return nil, contractErr(0, "series %q is exposed by both %s and %s", s, other, m.Name)
			}
			series[s] = m.Name
		}
	}
	for label, l := range valueLine {
		used := false
		for _, m := range c.Metrics {
			used = used || m.HasLabel(label)
		}
		if !used {
			return nil, contractErr(l, "label %q has values but no metric sets it", label)
		}
	}
	return c, nil
}

// normalizeRow collapses the spaces around cell separators so that
// "|Metric|Type|" and "| Metric | Type |" compare equal.
func normalizeRow(s string) string {
	parts := strings.Split(s, "|")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return strings.TrimSpace(strings.Join(parts, " | "))
}

func isDelimiterRow(s string) bool {
	return strings.Trim(s, "|-: ") == "" && strings.Contains(s, "-")
}

// splitRow returns the cells of a table row "| a | b |".
func splitRow(s string, line int) ([]string, error) {
	if !strings.HasSuffix(s, "|") || len(s) < 2 {
		return nil, contractErr(line, "table row does not end with |")
	}
	cells := strings.Split(s[1:len(s)-1], "|")
	for i := range cells {
		cells[i] = strings.TrimSpace(cells[i])
	}
	return cells, nil
}

// codeList parses a cell that holds only comma-separated `code` spans
// (possibly none) and returns their contents.
func codeList(cell string, line int, what string) ([]string, error) {
	var out []string
	for _, m := range codeSpanRE.FindAllStringSubmatch(cell, -1) {
		out = append(out, m[1])
	}
	rest := codeSpanRE.ReplaceAllString(cell, "")
	if strings.Trim(rest, ", ") != "" {
		return nil, contractErr(line, "%s: want comma-separated `code` spans, got %q", what, cell)
	}
	if n := strings.Count(rest, ","); len(out) > 0 && n != len(out)-1 {
		return nil, contractErr(line, "%s: want one comma between items, got %q", what, cell)
	}
	return out, nil
}

func parseMetricRow(cells []string, line int) (Metric, error) {
	if len(cells) != 5 {
		return Metric{}, contractErr(line, "metric row has %d cells, want 5", len(cells))
	}
	names, err := codeList(cells[0], line, "metric name")
	if err != nil {
		return Metric{}, err
	}
	if len(names) != 1 {
		return Metric{}, contractErr(line, "want exactly one `metric name`, got %q", cells[0])
	}
	m := Metric{Name: names[0], Type: MetricType(cells[1]), Help: cells[4]}
	if !metricNameRE.MatchString(m.Name) || strings.Contains(m.Name, "__") {
		return Metric{}, contractErr(line, "metric name %q: want streamprofile_ followed by lower-case words joined by single underscores", m.Name)
	}
	switch m.Type {
	case Counter:
		if !strings.HasSuffix(m.Name, "_total") {
			return Metric{}, contractErr(line, "counter %q must end in _total", m.Name)
		}
	case Gauge, Histogram:
		for _, suf := range []string{"_total", "_bucket", "_sum", "_count"} {
			if strings.HasSuffix(m.Name, suf) {
				return Metric{}, contractErr(line, "%s %q must not end in %s", m.Type, m.Name, suf)
			}
		}
	default:
		return Metric{}, contractErr(line, "metric %q: type %q, want counter, gauge or histogram", m.Name, cells[1])
	}
	if m.Labels, err = codeList(cells[2], line, "labels"); err != nil {
		return Metric{}, err
	}
	for i, l := range m.Labels {
		if !labelNameRE.MatchString(l) {
			return Metric{}, contractErr(line, "metric %q: label %q is not a lower-case identifier", m.Name, l)
		}
		if slices.Contains(reservedLabels, l) {
			return Metric{}, contractErr(line, "metric %q: label %q is reserved", m.Name, l)
		}
		if slices.Contains(m.Labels[:i], l) {
			return Metric{}, contractErr(line, "metric %q: label %q listed twice", m.Name, l)
		}
	}
	for _, r := range strings.Split(cells[3], ",") {
		r = strings.TrimSpace(r)
		if !slices.Contains(roles, r) {
			return Metric{}, contractErr(line, "metric %q: role %q, want some of %v", m.Name, r, roles)
		}
		if slices.Contains(m.Roles, r) {
			return Metric{}, contractErr(line, "metric %q: role %q listed twice", m.Name, r)
		}
		m.Roles = append(m.Roles, r)
	}
	if m.Help == "" {
		return Metric{}, contractErr(line, "metric %q has no meaning", m.Name)
	}
	return m, nil
}

func parseValuesRow(cells []string, line int) (string, []string, error) {
	if len(cells) != 3 {
		return "", nil, contractErr(line, "label values row has %d cells, want 3", len(cells))
	}
	labels, err := codeList(cells[0], line, "label")
	if err != nil {
		return "", nil, err
	}
	if len(labels) != 1 || !labelNameRE.MatchString(labels[0]) {
		return "", nil, contractErr(line, "want exactly one `label` name, got %q", cells[0])
	}
	values, err := codeList(cells[1], line, "values")
	if err != nil {
		return "", nil, err
	}
	if len(values) == 0 {
		return "", nil, contractErr(line, "label %q has no values", labels[0])
	}
	for i, v := range values {
		if v == "" {
			return "", nil, contractErr(line, "label %q has an empty value", labels[0])
		}
		if slices.Contains(values[:i], v) {
			return "", nil, contractErr(line, "label %q: value %q listed twice", labels[0], v)
		}
	}
	return labels[0], values, nil
}
