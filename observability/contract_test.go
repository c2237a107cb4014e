package observability_test

import (
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamprofile/streamprofile/deploy"
	"github.com/streamprofile/streamprofile/observability"
)

// TestMetricsMatchContract registers every metric of the package, touches
// each one through the public API (every closed label value included) and
// checks the gathered registry against deploy/METRICS.md: every
// streamprofile_* family is in the contract with its type and exactly its
// labels, every label with a closed value set takes only those values, and
// every family of the contract is exposed.
func TestMetricsMatchContract(t *testing.T) {
	contract, err := deploy.LoadContract()
	if err != nil {
		t.Fatal(err)
	}
	reg := observability.NewRegistry()
	m, err := observability.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	one := func() int64 { return 1 }
	if err := m.RegisterPipeline(observability.PipelineCounters{
		Topic: "clickstream", Consumed: one, Valid: one, Applied: one, Duplicates: one,
		DeadLetterByReason: func() map[string]int64 { return map[string]int64{"malformed": 1, "late": 2} },
	}); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterLag("clickstream", func() map[int]int64 { return map[int]int64{0: 3, 1: 0} }); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, out := range []string{observability.OutputProfile, observability.OutputTrigger, observability.OutputScore, observability.OutputDeadLetter} {
		m.Output(out).Observe(now, now.Add(-time.Minute), now.Add(-time.Millisecond), trace.SpanContext{})
	}
	m.ObserveFlush(12, 3*time.Millisecond)
	m.SetTrainerPending(7)
	m.AddTrainedExamples(100)
	m.SetChampionVersion("purchase_propensity", 3)
	m.SetPrequentialAUC("purchase_propensity", observability.ModelChampion, 0.8)
	m.SetPrequentialAUC("purchase_propensity", observability.ModelChallenger, 0.82)
	m.AddRollbacks(1)
	m.SetSegmentMembers("cart_abandoners", 4)
	m.AddSegmentChanges("cart_abandoners", observability.ChangeEnter, 5)
	m.AddSegmentChanges("cart_abandoners", observability.ChangeExit, 1)
	m.TriggerEmitted("cart_reminder")
	m.TriggerSuppressed("cart_reminder", "cooldown")

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	types := map[dto.MetricType]deploy.MetricType{
		dto.MetricType_COUNTER: deploy.Counter, dto.MetricType_GAUGE: deploy.Gauge, dto.MetricType_HISTOGRAM: deploy.Histogram,
	}
	exposed := map[string]bool{}
	seen := map[string]map[string]bool{} // closed label → values seen
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.HasPrefix(name, observability.Namespace+"_") {
			continue // go_*, process_*
		}
		exposed[name] = true
		want, ok := contract.Metric(name)
		if !ok {
			t.Errorf("%s is registered but not in deploy/METRICS.md", name)
			continue
		}
		if got := types[mf.GetType()]; got != want.Type {
			t.Errorf("%s: type %s, contract says %s", name, got, want.Type)
		}
		wantLabels := slices.Clone(want.Labels)
		sort.Strings(wantLabels)
		for _, mt := range mf.GetMetric() {
			var labels []string
			for _, l := range mt.GetLabel() {
				labels = append(labels, l.GetName())
				if closed, ok := contract.LabelValues[l.GetName()]; ok {
					if !slices.Contains(closed, l.GetValue()) {
						t.Errorf("%s: %s=%q is not one of the contract's values %v", name, l.GetName(), l.GetValue(), closed)
					}
					if seen[l.GetName()] == nil {
						seen[l.GetName()] = map[string]bool{}
					}
					seen[l.GetName()][l.GetValue()] = true
				}
			}
			sort.Strings(labels)
			if !slices.Equal(labels, wantLabels) {
				t.Errorf("%s: labels %v, contract says %v", name, labels, wantLabels)
			}
		}
	}
	for _, cm := range contract.Metrics {
		if !exposed[cm.Name] {
			t.Errorf("%s is in deploy/METRICS.md but not registered by observability.NewMetrics/RegisterPipeline/RegisterLag", cm.Name)
		}
	}
	// The exported constants are exactly the closed value sets, and the
	// API above produced every value.
	consts := map[string][]string{
		"stage":  {observability.StageEvent, observability.StageIngest},
		"model":  {observability.ModelChampion, observability.ModelChallenger},
		"change": {observability.ChangeEnter, observability.ChangeExit},
	}
	for label, values := range contract.LabelValues {
		got := slices.Clone(consts[label])
		want := slices.Clone(values)
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("label %s: package constants %v, contract values %v", label, got, want)
		}
		for _, v := range values {
			if !seen[label][v] {
				t.Errorf("label %s: value %q never exposed", label, v)
			}
		}
	}
}
