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
