package deploy

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestContractFile checks METRICS.md itself: it parses, and it lists
// exactly the metric families the deployment was designed around (the
// brief the metrics are implemented from), with their labels.
func TestContractFile(t *testing.T) {
	c, err := LoadContract()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"streamprofile_events_consumed_total":      {"topic"},
		"streamprofile_events_valid_total":         nil,
		"streamprofile_events_applied_total":       nil,
		"streamprofile_events_deduplicated_total":  nil,
		"streamprofile_events_dead_lettered_total": {"reason"},
		"streamprofile_consumer_lag":               {"topic", "partition"},
		"streamprofile_e2e_latency_seconds":        {"stage", "output"},
		"streamprofile_redis_flush_seconds":        nil,
		"streamprofile_redis_flush_users":          nil,
		"streamprofile_trainer_pending_examples":   nil,
		"streamprofile_trainer_examples_total":     nil,
		"streamprofile_model_champion_version":     {"task"},
		"streamprofile_model_prequential_auc":      {"task", "model"},
		"streamprofile_model_rollbacks_total":      nil,
		"streamprofile_segment_members":            {"segment"},
		"streamprofile_segment_changes_total":      {"segment", "change"},
		"streamprofile_triggers_emitted_total":     {"kind"},
		"streamprofile_triggers_suppressed_total":  {"kind", "reason"},
	}
	if len(c.Metrics) != len(want) {
		t.Errorf("METRICS.md lists %d metrics, want %d", len(c.Metrics), len(want))
	}
	for name, labels := range want {
		m, ok := c.Metric(name)
		if !ok {
			t.Errorf("METRICS.md lacks %s", name)
			continue
		}
		if !slices.Equal(m.Labels, labels) {
			t.Errorf("%s: labels %v, want %v", name, m.Labels, labels)
		}
	}
	for _, s := range []string{"streamprofile_e2e_latency_seconds_bucket", "streamprofile_redis_flush_seconds_bucket", "streamprofile_redis_flush_users_bucket"} {
		if m, ok := c.Series(s); !ok || m.Type != Histogram {
			t.Errorf("series %s: not exposed by a histogram of the contract", s)
		}
	}
	if got := c.LabelValues["stage"]; !slices.Equal(got, []string{"event", "ingest"}) {
		t.Errorf("stage values %v, want [event ingest]", got)
	}
}

func TestMetricSeries(t *testing.T) {
	tests := []struct {
		m    Metric
		want []string
	}{
		{Metric{Name: "streamprofile_x_total", Type: Counter}, []string{"streamprofile_x_total"}},
		{Metric{Name: "streamprofile_x", Type: Gauge}, []string{"streamprofile_x"}},
		{Metric{Name: "streamprofile_x_seconds", Type: Histogram}, []string{"streamprofile_x_seconds_bucket", "streamprofile_x_seconds_sum", "streamprofile_x_seconds_count"}},
	}
	for _, tt := range tests {
		if got := tt.m.Series(); !slices.Equal(got, tt.want) {
			t.Errorf("%s %s: Series() = %v, want %v", tt.m.Type, tt.m.Name, got, tt.want)
		}
	}
}

const contractHead = "| Metric | Type | Labels | Role | Meaning |\n|---|---|---|---|---|\n"

func TestParseContract(t *testing.T) {
	good := contractHead +
		"| `streamprofile_a_total` | counter | `topic`, `stage` | ingest, score | A. |\n" +
		"| `streamprofile_b_seconds` | histogram | | ingest | B. |\n" +
		"\n| Label | Values | Meaning |\n|---|---|---|\n| `stage` | `event`, `ingest` | S. |\n"
	c, err := ParseContract([]byte(good))
	if err != nil {
		t.Fatalf("valid contract: %v", err)
	}
	a, _ := c.Metric("streamprofile_a_total")
	if !slices.Equal(a.Labels, []string{"topic", "stage"}) || !slices.Equal(a.Roles, []string{"ingest", "score"}) || a.Help != "A." {
		t.Errorf("parsed %+v", a)
	}
	if m, ok := c.Series("streamprofile_b_seconds_count"); !ok || m.Name != "streamprofile_b_seconds" {
		t.Errorf("Series(_count) = %+v, %v", m, ok)
	}
	if _, ok := c.Series("streamprofile_b_seconds"); ok {
		t.Error("a histogram's bare family name is not a series")
	}

	bad := []struct {
		name, md, want string
	}{
		{"empty", "", "no metrics table"},
		{"header only", contractHead, "no metrics table"},
		{"counter without _total", contractHead + "| `streamprofile_a` | counter | | ingest | A. |\n", "must end in _total"},
		{"gauge with _total", contractHead + "| `streamprofile_a_total` | gauge | | ingest | A. |\n", "must not end in _total"},
		{"histogram with _bucket", contractHead + "| `streamprofile_a_bucket` | histogram | | ingest | A. |\n", "must not end in _bucket"},
		{"unknown type", contractHead + "| `streamprofile_a` | summary | | ingest | A. |\n", "want counter, gauge or histogram"},
		{"foreign prefix", contractHead + "| `other_a_total` | counter | | ingest | A. |\n", "want streamprofile_"},
		{"double underscore", contractHead + "| `streamprofile__a_total` | counter | | ingest | A. |\n", "single underscores"},
		{"two names", contractHead + "| `streamprofile_a_total`, `streamprofile_b_total` | counter | | ingest | A. |\n", "exactly one"},
		{"reserved label", contractHead + "| `streamprofile_a_total` | counter | `le` | ingest | A. |\n", "reserved"},
		{"bad label", contractHead + "| `streamprofile_a_total` | counter | `Topic` | ingest | A. |\n", "lower-case identifier"},
		{"label twice", contractHead + "| `streamprofile_a_total` | counter | `x`, `x` | ingest | A. |\n", "listed twice"},
		{"label not code", contractHead + "| `streamprofile_a_total` | counter | topic | ingest | A. |\n", "code"},
		{"labels without comma", contractHead + "| `streamprofile_a_total` | counter | `a` `b` | ingest | A. |\n", "one comma"},
		{"unknown role", contractHead + "| `streamprofile_a_total` | counter | | replay | A. |\n", "role"},
		{"no meaning", contractHead + "| `streamprofile_a_total` | counter | | ingest | |\n", "no meaning"},
		{"short row", contractHead + "| `streamprofile_a_total` | counter | | ingest |\n", "4 cells"},
		{"unterminated row", contractHead + "| `streamprofile_a_total` | counter | | ingest | A.\n", "does not end"},
		{"duplicate", contractHead + "| `streamprofile_a_total` | counter | | ingest | A. |\n| `streamprofile_a_total` | counter | | ingest | A. |\n", "exposed by both"},
		{"series collision", contractHead + "| `streamprofile_a` | histogram | | ingest | A. |\n| `streamprofile_a_count` | gauge | | ingest | A. |\n", "must not end in _count"},
		{"stray table", contractHead + "| `streamprofile_a_total` | counter | | ingest | A. |\n\n| x | y |\n", "outside"},
		{"values of unused label", contractHead + "| `streamprofile_a_total` | counter | | ingest | A. |\n\n| Label | Values | Meaning |\n|---|---|---|\n| `stage` | `a` | S. |\n", "no metric sets it"},
		{"no values", contractHead + "| `streamprofile_a_total` | counter | `stage` | ingest | A. |\n\n| Label | Values | Meaning |\n|---|---|---|\n| `stage` | | S. |\n", "no values"},
		{"value twice", contractHead + "| `streamprofile_a_total` | counter | `stage` | ingest | A. |\n\n| Label | Values | Meaning |\n|---|---|---|\n| `stage` | `a`, `a` | S. |\n", "listed twice"},
		{"label values twice", contractHead + "| `streamprofile_a_total` | counter | `stage` | ingest | A. |\n\n| Label | Values | Meaning |\n|---|---|---|\n| `stage` | `a` | S. |\n| `stage` | `b` | S. |\n", "listed twice"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseContract([]byte(tt.md))
			var ce *ContractError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *ContractError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

// FuzzParseContract checks that the parser never panics and that whatever
// it accepts satisfies the rules it promises to enforce.
func FuzzParseContract(f *testing.F) {
	f.Add(metricsMD)
	f.Add([]byte(contractHead + "| `streamprofile_a_total` | counter | `x` | ingest | A. |\n"))
	f.Add([]byte("| `a` |\n|"))
	f.Fuzz(func(t *testing.T, md []byte) {
		c, err := ParseContract(md)
		if err != nil {
			var ce *ContractError
			if !errors.As(err, &ce) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		seen := map[string]bool{}
		for _, m := range c.Metrics {
			if !metricNameRE.MatchString(m.Name) {
				t.Fatalf("accepted name %q", m.Name)
			}
			if (m.Type == Counter) != strings.HasSuffix(m.Name, "_total") {
				t.Fatalf("accepted %s %q", m.Type, m.Name)
			}
			if len(m.Roles) == 0 || m.Help == "" {
				t.Fatalf("accepted %+v", m)
			}
			for _, s := range m.Series() {
				if seen[s] {
					t.Fatalf("series %q twice", s)
				}
				seen[s] = true
			}
			for _, l := range m.Labels {
				if !labelNameRE.MatchString(l) || slices.Contains(reservedLabels, l) {
					t.Fatalf("accepted label %q", l)
				}
			}
		}
		for l, vs := range c.LabelValues {
			if len(vs) == 0 {
				t.Fatalf("label %q accepted without values", l)
			}
		}
	})
}
