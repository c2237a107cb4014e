package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/app"
)

// The README's first command, end to end: in-process Kafka, Redis, the
// bundled real sample, ingest, training, scoring, the report and the
// profiles file.
func TestDemoOnTheBundledSample(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo takes a few seconds")
	}
	dir := t.TempDir()
	reportPath, profilesPath := filepath.Join(dir, "report.json"), filepath.Join(dir, "profiles.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rep, err := app.RunDemo(ctx, app.DemoConfig{
		ExitWhenDone: true, ReportPath: reportPath, ProfilesOut: profilesPath,
		PurchaseHorizon: 5 * time.Minute, Progress: io.Discard,
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
