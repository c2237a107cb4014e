package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/app"
	"github.com/streamprofile/streamprofile/dashboard"
	"github.com/streamprofile/streamprofile/internal/browser"
)

// updateDocsEnv, when set, makes TestDashboardInBrowser also write its
// screenshot to docs/dashboard.png (the README's picture).
const updateDocsEnv = "STREAMPROFILE_UPDATE_DOCS"

// demoSpeed replays the bundled sample's 2 h 50 min of events in about 25 s.
const demoSpeed = 400

// demoHorizon is the purchase horizon the demo command sets for the
// bundled sample (the trainer's 30m default would leave most labels
// unmatured when the replay ends, and the AUC chart empty).
const demoHorizon = 5 * time.Minute

// pageReading is what the dashboard shows at one moment.
type pageReading struct {
	Status   string `json:"status"`
	Consumed string `json:"consumed"`
	Replay   string `json:"replay"`
	EPS      string `json:"eps"`
	P50      string `json:"p50"`
	P99      string `json:"p99"`
	Points   int    `json:"points"`
}

const readPage = `(() => {
  if (!document.getElementById('status')) return {points: 0}; // still loading
  const t = (id) => document.getElementById(id).textContent;
  const line = document.querySelector('#chart-eps polyline');
  return {status: document.getElementById('status').className, consumed: t('consumed'), replay: t('replay'),
    eps: t('eps'), p50: t('p50'), p99: t('p99'), points: line ? line.getAttribute('points').split(' ').length : 0};
})()`

// panelsReading is what the model, segments, changes and triggers panels
// show.
type panelsReading struct {
	AUCLines    int    `json:"aucLines"`    // series drawn in the AUC chart
	AUCShown    bool   `json:"aucShown"`    // the chart is visible, "waiting…" hidden
	AUCLegend   string `json:"aucLegend"`   // e.g. "network 0.712 recency 0.650 …"
	NetworkAUC  string `json:"networkAUC"`  // the network's latest AUC as shown
	Task        string `json:"task"`        // e.g. "(purchase_propensity, 17,434 examples learned, champion v3)"
	AUCAxisMin  string `json:"aucAxisMin"`  // the AUC chart's lowest y label
	AUCValues   string `json:"aucValues"`   // every model's latest AUC in the legend, space-separated
	Segments    int    `json:"segments"`    // segment rows
	Populated   int    `json:"populated"`   // segment rows with members > 0
	SegEmpty    bool   `json:"segEmpty"`    // "waiting for the scorer…" shown
	Changes     int    `json:"changes"`     // change rows
	Triggers    int    `json:"triggers"`    // trigger rows
	ChangesText string `json:"changesText"` // the first change row
	TriggerText string `json:"triggerText"` // the first trigger row
	TriggerUser string `json:"triggerUser"` // the first trigger's user
}

func (r panelsReading) filled() bool {
	return r.AUCShown && r.AUCLines > 0 && r.NetworkAUC != "" && r.Populated > 0 && !r.SegEmpty && r.Changes > 0 && r.Triggers > 0
}

const readPanels = `(() => {
  const $ = (id) => document.getElementById(id);
  const shown = (id) => !$(id).classList.contains('hidden');
  const rows = [...document.querySelectorAll('#segments .bar')];
  const net = [...document.querySelectorAll('#auc-legend span')].find((s) => s.classList.contains('network'));
  const first = (id) => { const tr = document.querySelector('#' + id + ' tr'); return tr ? tr.textContent : ''; };
  return {aucLines: document.querySelectorAll('#chart-auc polyline').length,
    aucShown: shown('chart-auc') && !shown('auc-empty'), aucLegend: $('auc-legend').textContent,
    networkAUC: net ? net.textContent.replace(/^network\s*/, '') : '', task: $('auc-task').textContent,
    aucAxisMin: (document.querySelector('#chart-auc text.axis') || {}).textContent || '',
    aucValues: [...document.querySelectorAll('#auc-legend span')].map((s) => s.textContent.split(' ').pop()).join(' '),
    segments: rows.length,
    populated: rows.filter((r) => Number(r.querySelector('.n').textContent.replace(/,/g, '')) > 0).length,
    segEmpty: shown('segments-empty'),
    changes: document.querySelectorAll('#changes tr').length, triggers: document.querySelectorAll('#triggers tr').length,
    changesText: first('changes'), triggerText: first('triggers'),
    triggerUser: (document.querySelector('#triggers td.user') || {}).textContent || ''};
})()`

// leadingInt parses the first number of s, ignoring thousands separators
// ("1,183 / 17,434" → 1183); -1 when there is none.
func leadingInt(s string) int64 {
	s = strings.TrimSpace(strings.ReplaceAll(s, ",", ""))
	end := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(s)
	}
	n, err := strconv.ParseInt(s[:end], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// TestDashboardInBrowser runs the demo with a slowed replay (about 25 s)
// and drives its live page in headless Chromium: the page connects, its
// numbers and charts move while the replay runs and agree with
// /api/stats, and the profile lookup box finds a user of the sample. Once
// the replay is through, the trainer's AUC chart, the scorer's segment
// sizes and its newest changes and triggers fill their panels (with the
// demo command's 5-minute purchase horizon), and the lookup box finds the
// user of the newest trigger. The screenshot is a test artefact (go test -artifacts keeps it;
// STREAMPROFILE_UPDATE_DOCS=1 writes docs/dashboard.png).
//
// Chromium is installed with apt-get when missing and the test runs as
// root; elsewhere the test skips (.ci/run installs it for CI).
func TestDashboardInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the browser test replays the sample for about 25 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin, err := browser.Find(ctx, true, t.Logf)
	if errors.Is(err, browser.ErrUnavailable) {
		t.Skipf("no headless browser for the dashboard test: %v (.ci/run installs Debian's chromium)", err)
	}
	if err != nil {
		t.Fatal(err)
	}

	ready := make(chan app.DemoInfo, 1)
	demoCtx, stopDemo := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := app.RunDemo(demoCtx, app.DemoConfig{
			Speed: demoSpeed, PurchaseHorizon: demoHorizon, HTTPAddr: "127.0.0.1:0", Progress: io.Discard,
			Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
			OnReady: func(i app.DemoInfo) { ready <- i },
		})
		done <- err
	}()
	var info app.DemoInfo
	select {
	case info = <-ready:
	case err := <-done:
		t.Fatalf("demo ended before it was ready: %v", err)
	case <-ctx.Done():
		t.Fatal("demo not ready in time")
	}
	defer func() {
		stopDemo()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("demo: %v", err)
		}
	}()

	b, err := browser.Launch(ctx, bin, info.DashboardURL, browser.Options{UserDataDir: t.TempDir(), Width: 1400, Height: 1700})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	page, err := b.Page(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer page.Close()
	read := func() pageReading {
		t.Helper()
		var r pageReading
		if err := page.Eval(ctx, readPage, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	waitFor := func(what string, ok func(pageReading) bool) pageReading {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			r := read()
			if ok(r) {
				return r
			}
			if time.Now().After(deadline) {
				t.Fatalf("page never showed %s; it shows %+v", what, r)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	first := waitFor("live numbers", func(r pageReading) bool {
		return strings.Contains(r.Status, "live") && leadingInt(r.Consumed) > 0 && r.Points >= 2
	})
	if strings.Contains(first.Replay, "done") {
		t.Fatalf("the replay finished before the first reading (%+v): slow it down", first)
	}
	time.Sleep(4 * time.Second)
	second := read()
	t.Logf("page at two moments: %+v then %+v", first, second)
	if leadingInt(second.Consumed) <= leadingInt(first.Consumed) || leadingInt(second.Replay) <= leadingInt(first.Replay) {
		t.Errorf("numbers did not move while the replay ran: consumed %s → %s, replay %s → %s",
			first.Consumed, second.Consumed, first.Replay, second.Replay)
	}
	if second.Points <= first.Points {
		t.Errorf("the events/s chart did not grow: %d → %d points", first.Points, second.Points)
	}
	if !strings.HasSuffix(second.P50, "ms") || !strings.HasSuffix(second.P99, "ms") {
		t.Errorf("latency tiles %q, %q: want milliseconds", second.P50, second.P99)
	}
	// The page shows what the API serves (at most a poll behind).
	resp, err := http.Get(strings.TrimSuffix(info.DashboardURL, "/") + "/api/stats")
	if err != nil {
		t.Fatal(err)
	}
	var st dashboard.Stats
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if shown := leadingInt(second.Consumed); shown > st.Pipeline.Consumed || st.Pipeline.Replay.Total != 17434 {
		t.Errorf("page shows %d consumed, /api/stats %d (replay total %d)", shown, st.Pipeline.Consumed, st.Pipeline.Replay.Total)
	}

	// The lookup box finds the sample's first user.
	var profile string
	if err := page.Eval(ctx, `(() => { document.getElementById('profile-id').value = '541312140';
		document.getElementById('lookup').requestSubmit(); return true; })()`, nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100 && !strings.Contains(profile, "views_total"); i++ {
		time.Sleep(100 * time.Millisecond)
		if err := page.Eval(ctx, `document.getElementById('profile').textContent`, &profile); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(profile, "541312140") || !strings.Contains(profile, "views_total") || !strings.Contains(profile, "affinities") {
		t.Errorf("profile box shows %.300q", profile)
	}

	// Keep the picture once the replay is through (most of the sample's
	// events are in its last 40 minutes: the charts show the burst).
	last := waitFor("the replay done", func(r pageReading) bool { return strings.Contains(r.Replay, "done") })
	if leadingInt(last.Consumed) < leadingInt(second.Consumed) {
		t.Errorf("consumed went back: %s after %s", last.Consumed, second.Consumed)
	}
	// The trainer's learning curve, the scorer's segment sizes and its
	// newest changes and triggers (cart abandonments fire once the idle
	// partitions' event time runs on) fill their panels.
	var panels panelsReading
	for deadline := time.Now().Add(time.Minute); ; {
		if err := page.Eval(ctx, readPanels, &panels); err != nil {
			t.Fatal(err)
		}
		if panels.filled() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the model, segments, changes and triggers panels did not all fill within a minute of the replay's end "+
				"(want the AUC chart drawn with the network's AUC, a segment with members, a change and a trigger); the page shows %+v", panels)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("panels: %+v", panels)
	if auc, err := strconv.ParseFloat(panels.NetworkAUC, 64); err != nil || auc < 0 || auc > 1 {
		t.Errorf("the network's AUC reads %q (legend %q): want a number in [0, 1]", panels.NetworkAUC, panels.AUCLegend)
	}
	if !strings.Contains(panels.Task, "purchase_propensity") {
		t.Errorf("the AUC chart's task reads %q: want purchase_propensity", panels.Task)
	}
	// Every AUC is within the chart's y axis (none clamped onto it).
	axisMin, err := strconv.ParseFloat(panels.AUCAxisMin, 64)
	if err != nil {
		t.Errorf("the AUC chart's lowest y label reads %q", panels.AUCAxisMin)
	}
	for _, v := range strings.Fields(panels.AUCValues) {
		if auc, err := strconv.ParseFloat(v, 64); err != nil || auc < axisMin {
			t.Errorf("legend AUC %q is below the chart's axis, which starts at %s (legend %q)", v, panels.AUCAxisMin, panels.AUCLegend)
		}
	}

	// The lookup box finds the user of the newest trigger (for the
	// picture: a profile the scorer acted on).
	if err := page.Eval(ctx, `(() => { document.getElementById('profile-id').value = `+strconv.Quote(panels.TriggerUser)+`;
		document.getElementById('lookup').requestSubmit(); return true; })()`, nil); err != nil {
		t.Fatal(err)
	}
	profile = ""
	for i := 0; i < 100 && !strings.Contains(profile, "views_total"); i++ {
		time.Sleep(100 * time.Millisecond)
		if err := page.Eval(ctx, `document.getElementById('profile').textContent`, &profile); err != nil {
			t.Fatal(err)
		}
	}
	if panels.TriggerUser == "" || !strings.Contains(profile, panels.TriggerUser) || !strings.Contains(profile, "views_total") {
		t.Errorf("profile box for the triggered user %q shows %.300q", panels.TriggerUser, profile)
	}
	time.Sleep(2 * time.Second)
	png, err := page.Screenshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.ArtifactDir(), "dashboard.png")
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", out, len(png))
	if os.Getenv(updateDocsEnv) != "" {
		if err := os.WriteFile(filepath.Join("..", "docs", "dashboard.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
