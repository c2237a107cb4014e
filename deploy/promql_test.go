package deploy

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// This file holds a small PromQL analyser: a lexer and a single pass over
// the tokens that finds the selectors (metric name and label matchers), the
// grouping labels (by, without, on, ignoring, group_left, group_right) and
// the function calls with the selectors inside them. It is not a full
// parser (the Prometheus parser is not a dependency of this module): it
// catches unbalanced brackets, unknown functions, range functions without a
// range, rate() of a gauge, and names, labels and label values that are not
// in the metrics contract. promtool does the complete check where it is
// installed (see README.md).

type promTokKind int

const (
	tokIdent promTokKind = iota
	tokNumber
	tokString
	tokDuration
	tokVar // a Grafana variable: $name, ${name}
	tokPunct
	tokOp
)

type promTok struct {
	kind promTokKind
	text string
	pos  int
}

var (
	promDurationRE = regexp.MustCompile(`^(\d+(ms|s|m|h|d|w|y))+`)
	promNumberRE   = regexp.MustCompile(`^(0[xX][0-9a-fA-F]+|(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)`)
	promIdentRE    = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_:]*`)
	promVarRE      = regexp.MustCompile(`^\$(\{[a-zA-Z0-9_.:]+\}|[a-zA-Z0-9_]+)`)
)

func isIdentByte(b byte) bool {
	return b == '_' || b == ':' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

func lexPromQL(s string) ([]promTok, error) {
	var toks []promTok
	for i := 0; i < len(s); {
		c := s[i]
		rest := s[i:]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(s) && s[j] != c {
				if s[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return nil, fmt.Errorf("offset %d: unterminated string", i)
			}
			raw := s[i : j+1]
			var v string
			switch c {
			case '`':
				v = raw[1 : len(raw)-1]
			case '\'':
				v = strings.ReplaceAll(raw[1:len(raw)-1], `\'`, `'`)
			default:
				var err error
				if v, err = strconv.Unquote(raw); err != nil {
					return nil, fmt.Errorf("offset %d: string %s: %v", i, raw, err)
				}
			}
			toks = append(toks, promTok{tokString, v, i})
			i = j + 1
		case c >= '0' && c <= '9' || c == '.' && len(rest) > 1 && rest[1] >= '0' && rest[1] <= '9':
			if m := promDurationRE.FindString(rest); m != "" && (len(m) == len(rest) || !isIdentByte(rest[len(m)]) || rest[len(m)] == ':') {
				toks = append(toks, promTok{tokDuration, m, i})
				i += len(m)
				break
			}
			m := promNumberRE.FindString(rest)
			if m == "" || len(m) < len(rest) && isIdentByte(rest[len(m)]) {
				return nil, fmt.Errorf("offset %d: malformed number or duration", i)
			}
			toks = append(toks, promTok{tokNumber, m, i})
			i += len(m)
		case c == '$':
			m := promVarRE.FindString(rest)
			if m == "" {
				return nil, fmt.Errorf("offset %d: stray $", i)
			}
			toks = append(toks, promTok{tokVar, m, i})
			i += len(m)
		case promIdentRE.MatchString(rest):
			m := promIdentRE.FindString(rest)
			toks = append(toks, promTok{tokIdent, m, i})
			i += len(m)
		case strings.ContainsRune("(){}[],:@", rune(c)):
			toks = append(toks, promTok{tokPunct, string(c), i})
			i++
		default:
			op := ""
			for _, o := range []string{"==", "!=", "=~", "!~", ">=", "<=", "=", ">", "<", "+", "-", "*", "/", "%", "^"} {
				if strings.HasPrefix(rest, o) {
					op = o
					break
				}
			}
			if op == "" {
				return nil, fmt.Errorf("offset %d: unexpected character %q", i, c)
			}
			toks = append(toks, promTok{tokOp, op, i})
			i += len(op)
		}
	}
	return toks, nil
}

var promAggregations = []string{
	"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
	"quantile", "limitk", "limit_ratio",
}

var promFunctions = []string{
	"abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh", "avg_over_time",
	"ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh", "count_over_time", "day_of_month",
	"day_of_week", "day_of_year", "days_in_month", "deg", "delta", "deriv", "double_exponential_smoothing", "exp",
	"floor", "histogram_avg", "histogram_count", "histogram_fraction", "histogram_quantile", "histogram_stddev",
	"histogram_stdvar", "histogram_sum", "holt_winters", "hour", "idelta", "increase", "info", "irate",
	"label_join", "label_replace", "last_over_time", "ln", "log10", "log2", "mad_over_time", "max_over_time",
	"min_over_time", "minute", "month", "pi", "predict_linear", "present_over_time", "quantile_over_time", "rad",
	"rate", "resets", "round", "scalar", "sgn", "sin", "sinh", "sort", "sort_by_label", "sort_by_label_desc",
	"sort_desc", "sqrt", "stddev_over_time", "stdvar_over_time", "sum_over_time", "tan", "tanh", "time",
	"timestamp", "vector", "year",
}

// promCounterFuncs are only meaningful on counters; promGaugeFuncs only on
// gauges (Prometheus documentation of each function).
var (
	promCounterFuncs = []string{"rate", "irate", "increase", "resets"}
	promGaugeFuncs   = []string{"deriv", "delta", "idelta", "predict_linear", "double_exponential_smoothing", "holt_winters"}
)

func promNeedsRange(fn string) bool {
	return strings.HasSuffix(fn, "_over_time") || slices.Contains(promCounterFuncs, fn) ||
		slices.Contains(promGaugeFuncs, fn) || fn == "changes"
}

type promMatcher struct{ label, op, value string }

type promSelector struct {
	metric   string
	matchers []promMatcher
}

type promCall struct {
	fn        string
	selectors []int // indices into promAnalysis.selectors
}

type promAnalysis struct {
	selectors []promSelector
	grouping  [][]string
	calls     []promCall
	vars      []string
}

// analyzePromQL lexes expr and walks its tokens once; see the file comment.
func analyzePromQL(expr string) (*promAnalysis, error) {
	toks, err := lexPromQL(expr)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("empty expression")
	}
	a := &promAnalysis{}
	type frame struct {
		open     string
		fn       string // the function or aggregation a '(' belongs to
		start    int    // len(a.selectors) when the frame opened
		hasRange bool
	}
	var stack []*frame
	pendingFn := ""
	is := func(i int, kind promTokKind, text string) bool {
		return i < len(toks) && toks[i].kind == kind && toks[i].text == text
	}
	errAt := func(i int, format string, args ...any) error {
		pos := len(expr)
		if i < len(toks) {
			pos = toks[i].pos
		}
		return fmt.Errorf("offset %d: %s", pos, fmt.Sprintf(format, args...))
	}
	// matchers parses {label op "value", ...} starting at the '{' at i and
	// returns the index after the '}'.
	matchers := func(i int, sel *promSelector) (int, error) {
		i++
		for !is(i, tokPunct, "}") {
			if i+2 >= len(toks) || toks[i].kind != tokIdent || toks[i+1].kind != tokOp || toks[i+2].kind != tokString {
				return 0, errAt(i, "want label=\"value\" in a selector")
			}
			op := toks[i+1].text
			if op != "=" && op != "!=" && op != "=~" && op != "!~" {
				return 0, errAt(i+1, "matcher operator %q", op)
			}
			sel.matchers = append(sel.matchers, promMatcher{toks[i].text, op, toks[i+2].text})
			i += 3
			if is(i, tokPunct, ",") {
				i++
			} else if !is(i, tokPunct, "}") {
				return 0, errAt(i, "want , or } in a selector")
			}
		}
		return i + 1, nil
	}
	for i := 0; i < len(toks); {
		tok := toks[i]
		switch tok.kind {
		case tokIdent:
			word := tok.text
			switch {
			case slices.Contains([]string{"by", "without", "on", "ignoring", "group_left", "group_right"}, word):
				i++
				if !is(i, tokPunct, "(") {
					if word == "group_left" || word == "group_right" {
						continue
					}
					return nil, errAt(i, "%s needs a label list", word)
				}
				i++
				var labels []string
				for !is(i, tokPunct, ")") {
					if i >= len(toks) || toks[i].kind != tokIdent {
						return nil, errAt(i, "want a label name in %s (...)", word)
					}
					labels = append(labels, toks[i].text)
					i++
					if is(i, tokPunct, ",") {
						i++
					}
				}
				a.grouping = append(a.grouping, labels)
				i++
			case slices.Contains([]string{"and", "or", "unless", "bool", "offset", "atan2"}, word),
				strings.EqualFold(word, "inf"), strings.EqualFold(word, "nan"):
				i++
			case slices.Contains(promAggregations, word) || slices.Contains(promFunctions, word):
				pendingFn = word
				i++
				if !is(i, tokPunct, "(") && !is(i, tokIdent, "by") && !is(i, tokIdent, "without") {
					return nil, errAt(i, "%s must be called", word)
				}
			case is(i+1, tokPunct, "("):
				return nil, errAt(i, "unknown function %q", word)
			default:
				sel := promSelector{metric: word}
				i++
				if is(i, tokPunct, "{") {
					if i, err = matchers(i, &sel); err != nil {
						return nil, err
					}
				}
				a.selectors = append(a.selectors, sel)
			}
		case tokPunct:
			switch tok.text {
			case "(":
				stack = append(stack, &frame{open: "(", fn: pendingFn, start: len(a.selectors)})
				pendingFn = ""
				i++
			case ")":
				if len(stack) == 0 || stack[len(stack)-1].open != "(" {
					return nil, errAt(i, "unbalanced )")
				}
				f := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				if f.fn != "" {
					if promNeedsRange(f.fn) && !f.hasRange {
						return nil, errAt(i, "%s() needs a range vector such as x[5m]", f.fn)
					}
					var idx []int
					for s := f.start; s < len(a.selectors); s++ {
						idx = append(idx, s)
					}
					a.calls = append(a.calls, promCall{fn: f.fn, selectors: idx})
				}
				i++
			case "[":
				if len(stack) > 0 {
					stack[len(stack)-1].hasRange = true
				}
				i++
				if i >= len(toks) || (toks[i].kind != tokDuration && toks[i].kind != tokVar) {
					return nil, errAt(i, "want a duration in [...]")
				}
				if toks[i].kind == tokVar {
					a.vars = append(a.vars, toks[i].text)
				}
				i++
				if is(i, tokPunct, ":") {
					i++
					if i < len(toks) && (toks[i].kind == tokDuration || toks[i].kind == tokVar) {
						if toks[i].kind == tokVar {
							a.vars = append(a.vars, toks[i].text)
						}
						i++
					}
				}
				if !is(i, tokPunct, "]") {
					return nil, errAt(i, "want ] after the range")
				}
				i++
			case "{":
				return nil, errAt(i, "selector without a metric name")
			case ",":
				if len(stack) == 0 {
					return nil, errAt(i, "comma outside a call")
				}
				i++
			case "@":
				i++
			default:
				return nil, errAt(i, "unexpected %q", tok.text)
			}
		case tokVar:
			a.vars = append(a.vars, tok.text)
			i++
		default:
			i++
		}
	}
	if len(stack) > 0 {
		return nil, fmt.Errorf("unbalanced (")
	}
	if pendingFn != "" {
		return nil, fmt.Errorf("%s is not called", pendingFn)
	}
	return a, nil
}

// promBuiltins are series Prometheus itself produces per target.
var promBuiltins = map[string][]string{
	"up": {"job", "instance"},
}

// promChecker checks expressions against the metrics contract.
type promChecker struct {
	contract  *Contract
	jobs      []string // scrape job names; `job` matchers must select one
	allowVars bool     // Grafana template variables allowed
}

// seriesLabels returns the labels a series can carry, or ok=false when the
// name is neither a contract series nor a Prometheus built-in.
func (pc promChecker) seriesLabels(name string) (labels []string, m Metric, ok bool) {
	if l, ok := promBuiltins[name]; ok {
		return l, Metric{Name: name, Type: Gauge}, true
	}
	m, ok = pc.contract.Series(name)
	if !ok {
		return nil, Metric{}, false
	}
	labels = append([]string{"job", "instance"}, m.Labels...)
	if strings.HasSuffix(name, "_bucket") && m.Type == Histogram {
		labels = append(labels, "le")
	}
	return labels, m, true
}

func (pc promChecker) check(expr string) []error {
	a, err := analyzePromQL(expr)
	if err != nil {
		return []error{err}
	}
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(a.vars) > 0 && !pc.allowVars {
		fail("template variables %v outside Grafana", a.vars)
	}
	var all []string
	for _, s := range a.selectors {
		labels, _, ok := pc.seriesLabels(s.metric)
		if !ok {
			fail("metric %s is not in METRICS.md", s.metric)
			continue
		}
		all = append(all, labels...)
		for _, mt := range s.matchers {
			if !slices.Contains(labels, mt.label) {
				fail("%s has no label %q", s.metric, mt.label)
				continue
			}
			if strings.Contains(mt.value, "$") {
				continue // a Grafana variable
			}
			switch {
			case mt.label == "job" && pc.jobs != nil:
				if err := matchesSome(mt, pc.jobs); err != nil {
					fail("%s: job matcher %s%q: %v", s.metric, mt.op, mt.value, err)
				}
			case pc.contract.LabelValues[mt.label] != nil:
				if err := matchesSome(mt, pc.contract.LabelValues[mt.label]); err != nil {
					fail("%s: %s%s%q: %v (METRICS.md values: %v)", s.metric, mt.label, mt.op, mt.value, err, pc.contract.LabelValues[mt.label])
				}
			}
		}
	}
	for _, g := range a.grouping {
		for _, l := range g {
			if len(a.selectors) > 0 && !slices.Contains(all, l) {
				fail("grouping label %q is carried by none of %s", l, selectorNames(a))
			}
		}
	}
	for _, c := range a.calls {
		for _, si := range c.selectors {
			name := a.selectors[si].metric
			_, m, ok := pc.seriesLabels(name)
			if !ok {
				continue
			}
			counter := m.Type == Counter || m.Type == Histogram && name != m.Name
			switch {
			case slices.Contains(promCounterFuncs, c.fn) && !counter:
				fail("%s() of %s, a %s: use it on counters only", c.fn, name, m.Type)
			case slices.Contains(promGaugeFuncs, c.fn) && counter:
				fail("%s() of %s, a counter: use rate() or increase()", c.fn, name)
			}
		}
		if c.fn == "histogram_quantile" {
			bucket, le := false, true
			for _, si := range c.selectors {
				bucket = bucket || strings.HasSuffix(a.selectors[si].metric, "_bucket")
			}
			for _, inner := range a.calls {
				le = le && !slices.Contains(promAggregations, inner.fn)
			}
			for _, g := range a.grouping {
				le = le || slices.Contains(g, "le")
			}
			if !bucket {
				fail("histogram_quantile() over no _bucket series")
			}
			if !le {
				fail("histogram_quantile() of an aggregation that drops le: aggregate by (le, ...)")
			}
		}
	}
	return errs
}

func selectorNames(a *promAnalysis) string {
	var s []string
	for _, sel := range a.selectors {
		s = append(s, sel.metric)
	}
	return strings.Join(s, ", ")
}

// matchesSome checks that an equality matcher names one of values and that
// a regular expression matcher selects at least one of them. Negative
// matchers are accepted when they are well formed.
func matchesSome(mt promMatcher, values []string) error {
	switch mt.op {
	case "=", "!=":
		if !slices.Contains(values, mt.value) {
			return fmt.Errorf("no such value")
		}
	case "=~", "!~":
		re, err := regexp.Compile("^(?:" + mt.value + ")$")
		if err != nil {
			return err
		}
		if mt.op == "=~" && !slices.ContainsFunc(values, re.MatchString) {
			return fmt.Errorf("matches no value")
		}
	}
	return nil
}

func testContract(t *testing.T) *Contract {
	t.Helper()
	c, err := ParseContract([]byte(contractHead +
		"| `streamprofile_c_total` | counter | `topic` | ingest | C. |\n" +
		"| `streamprofile_g` | gauge | `topic`, `partition` | ingest | G. |\n" +
		"| `streamprofile_h_seconds` | histogram | `stage` | ingest | H. |\n" +
		"\n| Label | Values | Meaning |\n|---|---|---|\n| `stage` | `event`, `ingest` | S. |\n"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAnalyzePromQL(t *testing.T) {
	a, err := analyzePromQL(`sum by (le, stage) (rate(streamprofile_h_seconds_bucket{stage="ingest", job=~"a.+"}[5m:1m])) > 0.5 and on (topic) x offset 1h`)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.selectors) != 2 || a.selectors[0].metric != "streamprofile_h_seconds_bucket" || a.selectors[1].metric != "x" {
		t.Errorf("selectors %+v", a.selectors)
	}
	if want := []promMatcher{{"stage", "=", "ingest"}, {"job", "=~", "a.+"}}; !slices.Equal(a.selectors[0].matchers, want) {
		t.Errorf("matchers %+v, want %+v", a.selectors[0].matchers, want)
	}
	if len(a.grouping) != 2 || !slices.Equal(a.grouping[0], []string{"le", "stage"}) || !slices.Equal(a.grouping[1], []string{"topic"}) {
		t.Errorf("grouping %v", a.grouping)
	}
	var fns []string
	for _, c := range a.calls {
		fns = append(fns, c.fn)
	}
	if !slices.Equal(fns, []string{"rate", "sum"}) {
		t.Errorf("calls %v, want [rate sum]", fns)
	}

	valid := []string{
		`up{job=~"streamprofile-.+"} == 0`,
		`absent(up{job="x"} == 1)`,
		`sum(rate(a[5m])) / clamp_min(sum(rate(b[5m])), 1e-9) > 0.01`,
		`histogram_quantile(0.99, sum(rate(b_bucket[$__rate_interval])) by (le))`,
		`topk(3, sum without (instance) (x)) * on (job) group_left (topic) y`,
		`max_over_time(rate(x[1m])[1h:])`,
		`-x + .5 - 0x1f ^ 2 % 3`,
		`x{a='single', b="esc\"aped", c=` + "`raw`" + `} # comment`,
		`count_values("v", x)`,
		"sum(\n  x\n)",
	}
	for _, e := range valid {
		if _, err := analyzePromQL(e); err != nil {
			t.Errorf("analyzePromQL(%q): %v", e, err)
		}
	}
	invalid := map[string]string{
		``:                          "empty",
		`rate(x)`:                   "range vector",
		`sum(rate(x[5m])`:           "unbalanced (",
		`sum(x))`:                   "unbalanced )",
		`x[5m`:                      "want ]",
		`x[five]`:                   "duration",
		`nosuchfn(x)`:               "unknown function",
		`x{a=}`:                     "label=",
		`x{a="b" c="d"}`:            "want , or }",
		`x{a=="b"}`:                 "matcher operator",
		`{a="b"}`:                   "without a metric name",
		`x{a="b`:                    "unterminated",
		`sum by x`:                  "label list",
		`sum`:                       "must be called",
		`x ; y`:                     "unexpected character",
		`x > 5q`:                    "malformed number",
		`x, y`:                      "comma outside",
		`x{a="\q"}`:                 "string",
		`$`:                         "stray $",
		`sum by (le, "x") (rate())`: "label name",
	}
	for e, want := range invalid {
		_, err := analyzePromQL(e)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("analyzePromQL(%q) = %v, want an error mentioning %q", e, err, want)
		}
	}
}

func TestPromChecker(t *testing.T) {
	pc := promChecker{contract: testContract(t), jobs: []string{"streamprofile-ingest", "prometheus"}}
	ok := []string{
		`sum by (topic) (rate(streamprofile_c_total{job="streamprofile-ingest"}[5m]))`,
		`sum by (topic, partition) (deriv(streamprofile_g[5m])) > 0`,
		`histogram_quantile(0.99, sum by (le, stage) (rate(streamprofile_h_seconds_bucket{stage="ingest"}[5m])))`,
		`rate(streamprofile_h_seconds_sum[5m]) / rate(streamprofile_h_seconds_count[5m])`,
		`up{job=~"streamprofile-.+"} == 0`,
	}
	for _, e := range ok {
		if errs := pc.check(e); len(errs) > 0 {
			t.Errorf("check(%q): %v", e, errs)
		}
	}
	bad := map[string]string{
		`streamprofile_nope_total`:                                                     "not in METRICS.md",
		`streamprofile_h_seconds`:                                                      "not in METRICS.md", // a histogram family is no series
		`streamprofile_c_total{partition="1"}`:                                         `no label "partition"`,
		`streamprofile_h_seconds_sum{le="1"}`:                                          `no label "le"`,
		`streamprofile_h_seconds_count{stage="event_time"}`:                            "no such value",
		`streamprofile_h_seconds_count{stage=~"ev.*x"}`:                                "matches no value",
		`up{job="streamprofile-score"}`:                                                "no such value",
		`up{job=~"("}`:                                                                 "missing closing",
		`sum by (reason) (streamprofile_c_total)`:                                      `grouping label "reason"`,
		`rate(streamprofile_g[5m])`:                                                    "counters only",
		`deriv(streamprofile_c_total[5m])`:                                             "use rate()",
		`histogram_quantile(0.9, sum(rate(streamprofile_h_seconds_bucket[5m])))`:       "drops le",
		`histogram_quantile(0.9, sum by (le) (rate(streamprofile_h_seconds_sum[5m])))`: "no _bucket",
		`rate(streamprofile_c_total[$__rate_interval])`:                                "template variables",
	}
	for e, want := range bad {
		errs := pc.check(e)
		if !slices.ContainsFunc(errs, func(err error) bool { return strings.Contains(err.Error(), want) }) {
			t.Errorf("check(%q) = %v, want an error mentioning %q", e, errs, want)
		}
	}
	grafana := promChecker{contract: pc.contract, allowVars: true}
	if errs := grafana.check(`rate(streamprofile_c_total{topic="$topic"}[$__rate_interval])`); len(errs) > 0 {
		t.Errorf("Grafana variables: %v", errs)
	}
}

func FuzzAnalyzePromQL(f *testing.F) {
	for _, s := range []string{
		`sum by (le) (rate(x_bucket{a="b"}[5m]))`, `up == 0`, `x[5m:]`, `"\"`, `$__rate_interval`, `{`, `sum by (`,
		`histogram_quantile(0.99, sum by (le, output) (rate(streamprofile_e2e_latency_seconds_bucket{stage="ingest"}[5m]))) > 2`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		a, err := analyzePromQL(expr)
		if err != nil {
			return
		}
		for _, c := range a.calls {
			for _, si := range c.selectors {
				if si < 0 || si >= len(a.selectors) {
					t.Fatalf("call %s refers to selector %d of %d", c.fn, si, len(a.selectors))
				}
			}
		}
		for _, s := range a.selectors {
			if !promIdentRE.MatchString(s.metric) {
				t.Fatalf("selector name %q", s.metric)
			}
		}
	})
}
