package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/app"
	"github.com/streamprofile/streamprofile/schema"
	"github.com/streamprofile/streamprofile/sink/scorer"
)

// The README's first command, end to end: in-process Kafka, Redis, the
// bundled real sample, ingest, training, scoring, the report and the
// profiles file; and every segment change and trigger the demo wrote,
// read back from its Kafka, validates against its schema
// (segment-changes-v1, retarget-v1) and is counted in the scorer's report.
func TestDemoOnTheBundledSample(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo takes a few seconds")
	}
	dir := t.TempDir()
	reportPath, profilesPath := filepath.Join(dir, "report.json"), filepath.Join(dir, "profiles.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// Once the roles have stopped, and before the demo's Kafka goes, read
	// back everything the scorer wrote.
	var changes, triggers []kafka.Message
	var final *app.ScoringReport
	rep, err := app.RunDemo(ctx, app.DemoConfig{
		ExitWhenDone: true, ReportPath: reportPath, ProfilesOut: profilesPath,
		PurchaseHorizon: 5 * time.Minute, Progress: io.Discard,
		OnDone: func(info app.DemoInfo, sc *app.ScoringReport) {
			final = sc
			changes = readAllTopic(t, ctx, info.Brokers, scorer.DefaultChangesTopic)
			triggers = readAllTopic(t, ctx, info.Brokers, scorer.DefaultRetargetTopic)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var fromFile app.Report
	b, err := os.ReadFile(reportPath)
	if err != nil || json.Unmarshal(b, &fromFile) != nil {
		t.Fatalf("report file: %v", err)
	}
	if rep.EventsRead != 17434 || rep.Valid != 17434 || rep.Applied != 17434 || rep.DeadLettered != 0 || rep.Users != 4504 {
		t.Fatalf("report: read %d valid %d applied %d dead %d users %d", rep.EventsRead, rep.Valid, rep.Applied, rep.DeadLettered, rep.Users)
	}
	if fromFile.EventsRead != rep.EventsRead || rep.EventsPerSecond <= 0 || rep.RedisFlushes == 0 {
		t.Fatalf("report file %+v", fromFile)
	}
	tr := rep.Training
	if tr == nil || tr.Tasks["purchase_propensity"].Examples != 17434 || tr.Tasks["purchase_propensity"].Trained == 0 || tr.Versions == 0 {
		t.Fatalf("training report %+v", tr)
	}
	sc := rep.Scoring
	if sc == nil || sc.Snapshots != 17434 || sc.Segments["new"].Members != 4504 {
		t.Fatalf("scoring report %+v", sc)
	}
	if sc.Triggers["cart_abandonment"] == 0 {
		t.Fatalf("no cart-abandonment trigger after the drain: %+v", sc.Triggers)
	}
	checkDemoOutputs(t, sc, final, changes, triggers)
	f, err := os.Open(profilesPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines, scored := 0, 0
	sc2 := bufio.NewScanner(f)
	sc2.Buffer(make([]byte, 1<<20), 1<<20)
	for sc2.Scan() {
		var line app.ProfileLine
		if err := json.Unmarshal(sc2.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		lines++
		if line.Features["views_total"]+line.Features["carts_total"]+line.Features["purchases_total"] == 0 {
			t.Fatalf("profile %s has no behaviour", line.UserID)
		}
		status := line.Scores["model_status"]
		if v, ok := line.Scores["purchase_propensity"].(float64); ok && v >= 0 && v <= 1 && line.Scores["model_version"] != nil &&
			(status == "champion" || status == "latest, not promoted") {
			scored++
		}
	}
	if lines != 4504 || scored != lines {
		t.Fatalf("profiles: %d lines, %d with a propensity score and model version", lines, scored)
	}
}

// The demo on a machine with nothing installed: the in-process Redis
// (miniredis) instead of a redis-server child process. Ingest only, so
// that it stays short; every event is applied and every user stored.
func TestDemoWithInProcessRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo takes a few seconds")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rep, err := app.RunDemo(ctx, app.DemoConfig{
		ExitWhenDone: true, InProcessRedis: true, NoTrain: true, NoScore: true, Progress: io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Redis != "miniredis" {
		t.Fatalf("Redis %q, want miniredis", rep.Redis)
	}
	if rep.EventsRead != 17434 || rep.Applied != 17434 || rep.DeadLettered != 0 || rep.Users != 4504 {
		t.Fatalf("report: read %d applied %d dead %d users %d", rep.EventsRead, rep.Applied, rep.DeadLettered, rep.Users)
	}
	if rep.IngestSeconds <= 0 || rep.WallSeconds < rep.IngestSeconds || rep.EventsPerSecond <= 0 {
		t.Fatalf("times: ingest %.2fs wall %.2fs, %.0f events/s", rep.IngestSeconds, rep.WallSeconds, rep.EventsPerSecond)
	}
}

// readAllTopic reads every record of every partition of topic up to its
// high watermark.
func readAllTopic(t *testing.T, ctx context.Context, brokers []string, topic string) []kafka.Message {
	t.Helper()
	conn, err := kafka.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil || len(parts) == 0 {
		t.Fatalf("partitions of %s: %d, %v", topic, len(parts), err)
	}
	return readTopic(t, ctx, brokers, topic, len(parts))
}

// checkDemoOutputs checks what the demo's scorer wrote to segment-changes
// and retarget: every message validates against its schema, and the
// messages are exactly those the scorer counted as it stopped, per segment
// and change and per trigger kind; rep (read after the drain, the scorer
// still running) counted no more than that.
func checkDemoOutputs(t *testing.T, rep, final *app.ScoringReport, changes, triggers []kafka.Message) {
	t.Helper()
	if final == nil {
		t.Fatal("OnDone was not called, or without the scorer's counters")
	}
	if len(changes) == 0 || len(triggers) == 0 {
		t.Fatalf("read back %d segment changes and %d triggers; want some of each", len(changes), len(triggers))
	}
	chSchema, err := schema.Compile(schema.SegmentChangesV1)
	if err != nil {
		t.Fatal(err)
	}
	trSchema, err := schema.Compile(schema.RetargetV1)
	if err != nil {
		t.Fatal(err)
	}
	// Validate on every CPU: there are thousands of messages, and the race
	// detector slows validation down.
	type job struct {
		sch  *jsonschema.Schema
		what string
		m    kafka.Message
	}
	jobs := make(chan job)
	var mu sync.Mutex
	var invalid []string
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				v, err := jsonschema.UnmarshalJSON(bytes.NewReader(j.m.Value))
				if err == nil {
					err = j.sch.Validate(v)
				}
				if err != nil {
					mu.Lock()
					invalid = append(invalid, fmt.Sprintf("%s %d/%d: %s\n%v", j.what, j.m.Partition, j.m.Offset, j.m.Value, err))
					mu.Unlock()
				}
			}
		}()
	}
	for _, m := range changes {
		jobs <- job{chSchema, "segment change", m}
	}
	for _, m := range triggers {
		jobs <- job{trSchema, "trigger", m}
	}
	close(jobs)
	wg.Wait()
	if len(invalid) > 0 {
		t.Fatalf("%d of %d messages do not validate; the first: %s", len(invalid), len(changes)+len(triggers), invalid[0])
	}

	// Count what was written as the scorer's statistics count it.
	written := map[string]scorer.SegmentStats{}
	for _, m := range changes {
		var c scorer.SegmentChange
		if err := json.Unmarshal(m.Value, &c); err != nil {
			t.Fatal(err)
		}
		s := written[c.Segment]
		switch c.Change {
		case "enter":
			s.Enters++
		case "exit":
			s.Exits++
		}
		written[c.Segment] = s
	}
	kinds := map[string]int64{}
	for _, m := range triggers {
		var tr scorer.Trigger
		if err := json.Unmarshal(m.Value, &tr); err != nil {
			t.Fatal(err)
		}
		kinds[tr.Kind]++
	}
	for name, s := range final.Segments {
		w := written[name]
		if w.Enters != s.Enters || w.Exits != s.Exits {
			t.Errorf("segment %s: %d enters and %d exits written, the scorer counted %d and %d", name, w.Enters, w.Exits, s.Enters, s.Exits)
		}
		if r := rep.Segments[name]; r.Enters > s.Enters || r.Exits > s.Exits {
			t.Errorf("segment %s: the report counts %d enters and %d exits, more than the %d and %d emitted", name, r.Enters, r.Exits, s.Enters, s.Exits)
		}
	}
	for name, w := range written {
		if _, ok := final.Segments[name]; !ok {
			t.Errorf("segment %s: %+v written, not counted by the scorer", name, w)
		}
	}
	for kind, n := range final.Triggers {
		if kinds[kind] != n {
			t.Errorf("trigger %s: %d written, the scorer counted %d", kind, kinds[kind], n)
		}
		if rep.Triggers[kind] > n {
			t.Errorf("trigger %s: the report counts %d, more than the %d emitted", kind, rep.Triggers[kind], n)
		}
	}
	for kind, n := range kinds {
		if _, ok := final.Triggers[kind]; !ok {
			t.Errorf("trigger %s: %d written, not counted by the scorer", kind, n)
		}
	}
	if later := emitted(final) - emitted(rep); later > 0 {
		t.Logf("the scorer emitted %d more changes and triggers after the report was read", later)
	}
	if !t.Failed() {
		t.Logf("%d segment changes and %d triggers read back, every one valid and counted", len(changes), len(triggers))
	}
}

// emitted counts the changes and triggers a scoring report counts.
func emitted(r *app.ScoringReport) int64 {
	var n int64
	for _, s := range r.Segments {
		n += s.Enters + s.Exits
	}
	for _, k := range r.Triggers {
		n += k
	}
	return n
}
