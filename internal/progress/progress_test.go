package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestPlainLinesWhenNotATerminal(t *testing.T) {
	var buf bytes.Buffer
	no := false
	r := New("replay", 100, Options{Out: &buf, Terminal: &no, Interval: time.Nanosecond})
	for i := 0; i < 4; i++ {
		r.Add(25)
	}
	r.Done()
	r.Done()
	out := buf.String()
	if !strings.Contains(out, "replay: 100/100 (100%)") {
		t.Fatalf("no final periodic line in %q", out)
	}
	if strings.Count(out, "done in") != 1 {
		t.Fatalf("summary must appear exactly once: %q", out)
	}
}

func TestBarWhenTerminal(t *testing.T) {
	var buf bytes.Buffer
	yes := true
	r := New("replay", 10, Options{Out: &buf, Terminal: &yes})
	r.Add(10)
	r.Done()
	if !strings.Contains(buf.String(), "10 done in") {
		t.Fatalf("missing summary: %q", buf.String())
	}
}

// TestSetUnitAndLogf: Set takes running totals (never going back), the
// unit names the rate, and Logf lines appear in both modes.
func TestSetUnitAndLogf(t *testing.T) {
	for _, term := range []bool{false, true} {
		var buf bytes.Buffer
		r := New("pipeline", 1000, Options{Out: &buf, Terminal: &term, Interval: time.Nanosecond, Unit: "rec"})
		r.Set(400)
		r.Set(300) // stale total: ignored
		r.Logf("phase %d: %s", 2, "warm-up")
		r.Set(1000)
		r.Done()
		out := buf.String()
		if !strings.Contains(out, "phase 2: warm-up\n") {
			t.Errorf("terminal %v: Logf line missing in %q", term, out)
		}
		if !strings.Contains(out, "pipeline: 1000 done in") || !strings.Contains(out, "rec/s)") {
			t.Errorf("terminal %v: summary with unit missing in %q", term, out)
		}
		if !term && !strings.Contains(out, "pipeline: 400/1000 (40%)") {
			t.Errorf("plain mode: no line for the first total in %q", out)
		}
	}
}

// TestETA: half done in 10 s at a steady rate leaves 10 s.
func TestETA(t *testing.T) {
	var buf bytes.Buffer
	no := false
	r := New("replay", 100, Options{Out: &buf, Terminal: &no})
	now := time.Now()
	r.start, r.done = now.Add(-10*time.Second), 50
	r.line(now)
	if got := buf.String(); !strings.Contains(got, "50/100 (50%) 5 ev/s eta 10s") {
		t.Errorf("line %q, want 5 ev/s and eta 10s", got)
	}
}

// TestStartCountsFromWhenTheWorkBegan: a Reporter made after its work ran
// (a consumer waited for once a replay ends) reports the rate over the
// whole run, not over the short wait; a zero or future Start means now.
func TestStartCountsFromWhenTheWorkBegan(t *testing.T) {
	no := false
	for _, tc := range []struct {
		name   string
		start  time.Time
		wantIn string
	}{
		{"a thousand seconds ago", time.Now().Add(-1000 * time.Second), "(1 ev/s)"},
		{"zero", time.Time{}, "1000 done in 0s ("},
		{"future", time.Now().Add(time.Hour), "1000 done in 0s ("},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			r := New("ingest", 1000, Options{Out: &buf, Terminal: &no, Start: tc.start})
			r.Add(1000)
			r.Done()
			if !strings.Contains(buf.String(), tc.wantIn) {
				t.Fatalf("got %q, want it to contain %q", buf.String(), tc.wantIn)
			}
		})
	}
}
