package app

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/streamprofile/streamprofile/observability"
	"github.com/streamprofile/streamprofile/sink/scorer"
)

// TestScorerExporter: scorer statistics become the contract's metrics;
// counters add only what is new since the last export (a total that did
// not grow adds nothing), member gauges follow the last read, and the
// champion version is exported per task of the champion once one is in
// use.
func TestScorerExporter(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := observability.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	e := newScorerExporter(m)
	e.export(scorer.Stats{
		Segments:   map[string]scorer.SegmentStats{"carter": {Members: 7, Enters: 9, Exits: 2}, "new": {Members: 0}},
		Triggers:   map[string]int64{scorer.KindCartAbandonment: 3},
		Suppressed: map[string]map[string]int64{scorer.SuppressConsent: {scorer.KindCartAbandonment: 1}},
	}, nil)
	e.export(scorer.Stats{
		Segments: map[string]scorer.SegmentStats{"carter": {Members: 5, Enters: 10, Exits: 5}, "new": {Members: 4, Enters: 4}},
		Triggers: map[string]int64{scorer.KindCartAbandonment: 3, scorer.KindPriceDrop: 2},
		Suppressed: map[string]map[string]int64{
			scorer.SuppressConsent: {scorer.KindCartAbandonment: 1},
			scorer.SuppressCap:     {scorer.KindPriceDrop: 4},
		},
		ModelVersion: 6,
	}, []string{"purchase_propensity", "repeat_purchase_90d"})
	want := `
# HELP streamprofile_model_champion_version Version number of the model currently serving the task (the champion).
# TYPE streamprofile_model_champion_version gauge
streamprofile_model_champion_version{task="purchase_propensity"} 6
streamprofile_model_champion_version{task="repeat_purchase_90d"} 6
# HELP streamprofile_segment_changes_total Segment membership changes; change is enter or exit.
# TYPE streamprofile_segment_changes_total counter
streamprofile_segment_changes_total{change="enter",segment="carter"} 10
streamprofile_segment_changes_total{change="enter",segment="new"} 4
streamprofile_segment_changes_total{change="exit",segment="carter"} 5
# HELP streamprofile_segment_members Users currently in the segment.
# TYPE streamprofile_segment_members gauge
streamprofile_segment_members{segment="carter"} 5
streamprofile_segment_members{segment="new"} 4
# HELP streamprofile_triggers_emitted_total Triggers emitted, by kind.
# TYPE streamprofile_triggers_emitted_total counter
streamprofile_triggers_emitted_total{kind="cart_abandonment"} 3
streamprofile_triggers_emitted_total{kind="price_drop"} 2
# HELP streamprofile_triggers_suppressed_total Triggers that fired but were not emitted, by kind and reason (cooldown, consent, ...).
# TYPE streamprofile_triggers_suppressed_total counter
streamprofile_triggers_suppressed_total{kind="cart_abandonment",reason="consent"} 1
streamprofile_triggers_suppressed_total{kind="price_drop",reason="cap"} 4
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "streamprofile_model_champion_version",
		"streamprofile_segment_changes_total", "streamprofile_segment_members", "streamprofile_triggers_emitted_total",
		"streamprofile_triggers_suppressed_total"); err != nil {
		t.Error(err)
	}
}
