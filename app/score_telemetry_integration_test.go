package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamprofile/streamprofile/app"
	"github.com/streamprofile/streamprofile/internal/testenv"
	"github.com/streamprofile/streamprofile/observability"
	"github.com/streamprofile/streamprofile/sink/scorer"
)

// scoreTraceClicks are replayed by TestScoreTelemetryThroughRealKafka:
// three users view for the first time (each enters "viewer"), and the
// third view shows the lamp u-watch viewed at half its price (a price-drop
// trigger for u-watch, caused by u-cheap's click).
var scoreTraceClicks = []struct {
	user, item string
	price      float64
	at         time.Duration
}{
	{"u-watch", "lamp", 100, 0},
	{"u-other", "book", 20, time.Minute},
	{"u-cheap", "lamp", 50, 2 * time.Minute},
}

// TestScoreTelemetryThroughRealKafka replays clicks, traced, into real
// Kafka, runs the ingest role and the score role (with its admin) on real
// Redis, and follows each segment change and trigger back to its click:
//
//   - every record on segment-changes and retarget carries, in its
//     headers, the context of the scorer's emit span, whose parent is the
//     scorer's consume span of the snapshot, whose remote parent is the
//     ingester's emit span of that snapshot, whose parent is the
//     ingester's consume span of the click, whose remote parent is the
//     replay's producer span: one trace id from the replayed click to the
//     change or trigger;
//   - the change of u-cheap and the price-drop trigger it caused for
//     u-watch share u-cheap's click's trace; the three clicks have three
//     traces;
//   - /readyz turns ready with the checks scorer-partitions, scorer-redis
//     and model; /metrics shows the latency histograms per output, the
//     snapshot topic's lag, and the exported segment and trigger counters.
func TestScoreTelemetryThroughRealKafka(t *testing.T) {
	e := newEnv(t, 1) // one partition: the watcher and the cheaper view meet there
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())), sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())

	dir := t.TempDir()
	t0 := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	var lines []string
	eventTime := map[string]int64{} // user → click time, unix ms
	for i, c := range scoreTraceClicks {
		at := t0.Add(c.at)
		eventTime[c.user] = at.UnixMilli()
		b, err := json.Marshal(map[string]any{"schema": 1, "event_id": fmt.Sprintf("trace-%d", i), "type": "view",
			"user_id": c.user, "ts": at.Format(time.RFC3339Nano), "session_id": "s-" + c.user, "item_id": c.item,
			"category": "home", "price": c.price})
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(b))
	}
	data := filepath.Join(dir, "clicks.jsonl")
	segFile := filepath.Join(dir, "segments.yaml")
	if err := os.WriteFile(data, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(segFile, []byte("version: 1\nsegments:\n  - name: viewer\n    rule: views_total >= 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := app.RunReplay(ctx, app.ReplayConfig{Brokers: e.brokers, Data: data, Format: "jsonl", Topic: e.topic, Tracing: tp, Progress: io.Discard})
	if err != nil || st.Published != int64(len(scoreTraceClicks)) {
		t.Fatalf("replay: %+v, %v", st, err)
	}

	icfg := e.ingestConfig()
	icfg.Telemetry = app.Telemetry{Tracing: tp}
	_, stopIngest := runIngester(t, icfg, "ingest", nil)
	defer stopIngest()

	changesTopic, retargetTopic := testenv.Topic(t, e.brokers, 1), testenv.Topic(t, e.brokers, 1)
	admin, err := app.NewAdmin(app.AdminConfig{Addr: "127.0.0.1:0", MaxLag: 0})
	if err != nil {
		t.Fatal(err)
	}
	opts := e.rdb.Options()
	s, err := app.NewScorer(app.ScoreConfig{
		Brokers: e.brokers, Group: "score-" + e.topic, SessionTimeout: 6 * time.Second,
		Redis:    app.RedisConfig{Addr: opts.Addr, DB: opts.DB},
		Registry: app.RegistryConfig{Dir: scoreRegistry(t)}, RegistryInterval: 100 * time.Millisecond,
		SegmentsFile: segFile, MembersInterval: 100 * time.Millisecond, DisableErasures: true,
		Scorer: scorer.Config{Topic: e.topic + ".examples", ChangesTopic: changesTopic, RetargetTopic: retargetTopic,
			Prefix: e.prefix, FlushInterval: 5 * time.Millisecond},
		Telemetry: app.Telemetry{Tracing: tp, Admin: admin},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sctx, stopScore := context.WithCancel(ctx)
	sdone := make(chan error, 1)
	go func() { sdone <- app.ServeScorer(sctx, s, admin) }()
	scoreStopped := false
	stop := func() {
		if !scoreStopped {
			scoreStopped = true
			stopScore()
			if err := <-sdone; err != nil {
				t.Errorf("score: %v", err)
			}
		}
	}
	defer stop()
	changes, triggers := e.followScore(t, changesTopic), e.followScore(t, retargetTopic)

	base := waitAddr(t, admin)
	var ready readyReport
	scoreWait(t, time.Minute, "/readyz to turn ready", func() bool {
		code, body := httpGet(t, base+"/readyz")
		if err := json.Unmarshal([]byte(body), &ready); err != nil {
			t.Fatalf("/readyz body %q: %v", body, err)
		}
		return code == http.StatusOK
	})
	if got := checkNames(ready); got != "scorer-partitions,scorer-redis,model" {
		t.Errorf("/readyz checks %s, want scorer-partitions,scorer-redis,model", got)
	}
	scoreWait(t, time.Minute, "a change per user and the price drop", func() bool {
		return len(changes.all()) >= len(scoreTraceClicks) && len(triggers.all()) >= 1
	})

	spans := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	// origin follows an output record's trace back to the replayed click
	// and returns the click's event time.
	origin := func(what string, m kafka.Message) (trace.TraceID, int64, error) {
		steps := []struct {
			name   string
			kind   trace.SpanKind
			remote bool // the span's parent is in another process (remote)
		}{
			{observability.SpanEmit, trace.SpanKindProducer, false},            // scorer: the change or trigger
			{"process " + e.topic + ".examples", trace.SpanKindConsumer, true}, // scorer: the snapshot
			{observability.SpanEmit, trace.SpanKindProducer, false},            // ingester: the snapshot
			{"process " + e.topic, trace.SpanKindConsumer, true},               // ingester: the click
			{"send " + e.topic, trace.SpanKindProducer, false},                 // replay: the click
		}
		sc := trace.SpanContextFromContext(observability.ExtractHeaders(context.Background(), m.Headers))
		if !sc.IsValid() {
			return trace.TraceID{}, 0, fmt.Errorf("%s at offset %d carries no trace context", what, m.Offset)
		}
		id := sc.SpanID()
		var sp sdktrace.ReadOnlySpan
		for i, step := range steps {
			var ok bool
			if sp, ok = spans[id]; !ok {
				return trace.TraceID{}, 0, fmt.Errorf("%s: step %d (%s) span %v was not recorded", what, i, step.name, id)
			}
			if sp.Name() != step.name || sp.SpanKind() != step.kind || sp.SpanContext().TraceID() != sc.TraceID() {
				t.Fatalf("%s: step %d is %q (%v) in trace %v, want %q (%v) in trace %v",
					what, i, sp.Name(), sp.SpanKind(), sp.SpanContext().TraceID(), step.name, step.kind, sc.TraceID())
			}
			if i < len(steps)-1 && sp.Parent().IsRemote() != step.remote {
				t.Fatalf("%s: %s's parent remote=%v, want %v", what, step.name, sp.Parent().IsRemote(), step.remote)
			}
			id = sp.Parent().SpanID()
		}
		if sp.Parent().IsValid() {
			t.Fatalf("%s: the replay span has a parent %v", what, sp.Parent())
		}
		for _, a := range sp.Attributes() {
			if a.Key == observability.AttrEventTime {
				return sc.TraceID(), a.Value.AsInt64(), nil
			}
		}
		t.Fatalf("%s: replay span without %s", what, observability.AttrEventTime)
		return trace.TraceID{}, 0, nil
	}
	// Spans end a little after their record is visible (with the flush
	// that sent it): wait until every output's whole trace is recorded.
	var unresolved error
	scoreWait(t, 30*time.Second, "the outputs' traces", func() bool {
		for _, sp := range rec.Ended() {
			spans[sp.SpanContext().SpanID()] = sp
		}
		unresolved = nil
		for _, m := range append(changes.all(), triggers.all()...) {
			if _, _, err := origin("record of "+m.Topic, m); err != nil {
				unresolved = err
				return false
			}
		}
		return true
	})
	if unresolved != nil {
		t.Fatal(unresolved)
	}

	// Every scorer consume span of a snapshot has its score step as a
	// child: the model, segments and triggers of that snapshot.
	scored := map[trace.SpanID]bool{}
	for _, sp := range spans {
		if sp.Name() == observability.SpanScore {
			scored[sp.Parent().SpanID()] = true
		}
	}
	consumed := 0
	for id, sp := range spans {
		if sp.Name() == "process "+e.topic+".examples" {
			consumed++
			if !scored[id] {
				t.Errorf("scorer consume span %v has no %q child", id, observability.SpanScore)
			}
		}
	}
	if consumed == 0 {
		t.Error("no scorer consume span recorded")
	}

	traceOf := map[string]trace.TraceID{} // user → the trace of its click
	for _, m := range changes.all() {
		var c scorer.SegmentChange
		if err := json.Unmarshal(m.Value, &c); err != nil {
			t.Fatal(err)
		}
		id, at, _ := origin("change "+c.Change+" "+c.Segment+" of "+c.UserID, m)
		if at != eventTime[c.UserID] {
			t.Errorf("change of %s traces back to the click at %d, want its own at %d", c.UserID, at, eventTime[c.UserID])
		}
		traceOf[c.UserID] = id
	}
	if len(traceOf) != len(scoreTraceClicks) {
		t.Fatalf("changes of %d users, want %d", len(traceOf), len(scoreTraceClicks))
	}
	if traceOf["u-watch"] == traceOf["u-other"] || traceOf["u-other"] == traceOf["u-cheap"] || traceOf["u-watch"] == traceOf["u-cheap"] {
		t.Errorf("three clicks share traces: %v", traceOf)
	}
	for _, m := range triggers.all() {
		var tr scorer.Trigger
		if err := json.Unmarshal(m.Value, &tr); err != nil {
			t.Fatal(err)
		}
		if tr.Kind != scorer.KindPriceDrop || tr.UserID != "u-watch" {
			t.Fatalf("trigger %s for %s, want only the price drop for u-watch", tr.Kind, tr.UserID)
		}
		id, at, _ := origin("trigger "+tr.Kind, m)
		if id != traceOf["u-cheap"] || at != eventTime["u-cheap"] {
			t.Errorf("the price drop is in trace %v (click at %d), want u-cheap's %v", id, at, traceOf["u-cheap"])
		}
		t.Logf("price drop for u-watch in trace %v, from u-cheap's replayed click through ingest and the scorer", id)
	}

	// Metrics: latency observed as each output was acknowledged; counters
	// exported when the role stops.
	_, text := httpGet(t, base+"/metrics")
	m := parseMetrics(text)
	n := float64(len(scoreTraceClicks))
	for series, want := range map[string]float64{
		`streamprofile_e2e_latency_seconds_count{output="segment_change",stage="ingest"}`:      n,
		`streamprofile_e2e_latency_seconds_count{output="segment_change",stage="event"}`:       n,
		`streamprofile_e2e_latency_seconds_count{output="trigger",stage="ingest"}`:             1,
		fmt.Sprintf(`streamprofile_consumer_lag{partition="0",topic=%q}`, e.topic+".examples"): 0,
	} {
		if got, ok := m[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	stop()
	h, err := admin.Handler()
	if err != nil {
		t.Fatal(err)
	}
	_, text = get(t, h, "/metrics")
	m = parseMetrics(text)
	for series, want := range map[string]float64{
		`streamprofile_segment_changes_total{change="enter",segment="viewer"}`: n,
		`streamprofile_segment_members{segment="viewer"}`:                      n,
		`streamprofile_triggers_emitted_total{kind="price_drop"}`:              1,
		`streamprofile_model_champion_version{task="purchase_propensity"}`:     1,
	} {
		if got, ok := m[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
}
