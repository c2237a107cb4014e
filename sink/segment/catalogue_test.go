package segment_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/sink/segment"
)

func TestParseCatalogue(t *testing.T) {
	src := `version: 1
segments:
  - name: high_value
    description: "Top spenders"
    rule: "rfm_monetary >= 4 and rfm_frequency >= 3"
    exit_rule: rfm_monetary < 3
    min_dwell: 24h
  - name: silent
    rule: days_since_last_seen >= 7d
    time_relative: true
    min_dwell: 1.5d
  - name: a1
    rule: |
      views_total > 1
      and carts_total > 0
    exit_rule: ~
    min_dwell: 1h30m
`
	c := mustParse(t, src)
	if c.Len() != 3 || c.File() != "test.yaml" || len(c.Digest()) != 64 {
		t.Fatalf("Len %d File %q Digest %q", c.Len(), c.File(), c.Digest())
	}
	segs := c.Segments()
	hv := segs[0]
	if hv.Name != "high_value" || hv.Description != "Top spenders" || hv.Rule.String() != "rfm_monetary >= 4 and rfm_frequency >= 3" ||
		hv.ExitRule == nil || hv.ExitRule.String() != "rfm_monetary < 3" || hv.MinDwell != 24*time.Hour || hv.TimeRelative || hv.Line != 3 {
		t.Errorf("high_value = %+v", hv)
	}
	if s := segs[1]; s.Name != "silent" || !s.TimeRelative || s.MinDwell != 36*time.Hour || s.ExitRule != nil {
		t.Errorf("silent = %+v", s)
	}
	if s := segs[2]; s.Rule.String() != "views_total > 1\nand carts_total > 0\n" || s.ExitRule != nil || s.MinDwell != 90*time.Minute {
		t.Errorf("a1 = %+v", s)
	}
	if s, ok := c.Segment("silent"); !ok || s.Name != "silent" {
		t.Errorf("Segment(silent) = %+v, %v", s, ok)
	}
	if _, ok := c.Segment("nope"); ok {
		t.Error("Segment(nope) found")
	}
	// Segments returns a copy.
	segs[0].Name = "changed"
	if c.Segments()[0].Name != "high_value" {
		t.Error("Segments shares its slice")
	}
	// Same bytes, same digest; different bytes, different digest.
	if mustParse(t, src).Digest() != c.Digest() || mustParse(t, src+"\n").Digest() == c.Digest() {
		t.Error("Digest is not a function of the source")
	}
}

func TestParseEmptySegmentList(t *testing.T) {
	for _, src := range []string{"version: 1\nsegments: []\n", "version: 1\nsegments:\n"} {
		if c := mustParse(t, src); c.Len() != 0 {
			t.Errorf("%q: %d segments", src, c.Len())
		}
	}
}

func TestParseDurations(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"0", 0, ""},
		{"0s", 0, ""},
		{"90s", 90 * time.Second, ""},
		{"30m", 30 * time.Minute, ""},
		{"24h", 24 * time.Hour, ""},
		{"7d", 7 * 24 * time.Hour, ""},
		{"0.5d", 12 * time.Hour, ""},
		{"2w", 14 * 24 * time.Hour, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"1.5h", 90 * time.Minute, ""},
		{"3650d", segment.MaxDwell, ""},
		{"3651d", 0, "longer than 3650 days"},
		{"1e9h", 0, "invalid duration"},
		{"3600", 0, "invalid duration"},
		{"7 days", 0, "invalid duration"},
		{"7y", 0, "invalid duration"},
		{"-1h", 0, "negative duration"},
		{"d", 0, "invalid duration"},
	}
	for _, tt := range tests {
		src := "version: 1\nsegments:\n  - name: a\n    rule: views_total > 1\n    min_dwell: " + tt.in + "\n"
		c, err := segment.Parse("d.yaml", []byte(src), segment.Config{})
		if tt.err != "" {
			if err == nil {
				t.Errorf("min_dwell %q: no error", tt.in)
				continue
			}
			e := asError(t, err)
			if !errors.Is(err, segment.ErrInvalid) || e.Line != 5 || e.Column != 16 || e.Field != "min_dwell" || !strings.Contains(e.Msg, tt.err) {
				t.Errorf("min_dwell %q: %v, want d.yaml:5:16 ... %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("min_dwell %q: %v", tt.in, err)
			continue
		}
		if got := c.Segments()[0].MinDwell; got != tt.want {
			t.Errorf("min_dwell %q = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestParseErrors checks each error's sentinel, position, segment and field.
// The position of a rule error is the offending character in the file.
func TestParseErrors(t *testing.T) {
	head := "version: 1\nsegments:\n"
	tests := []struct {
		name        string
		src         string
		err         error
		line, col   int
		seg, field  string
		ruleCol     int
		msg         string
		wantErrsMin int // at least this many joined errors (0: 1)
	}{
		{"unknown name in plain rule", head + "  - name: hv\n    rule: views_total > 1 and rfm_monetery >= 4\n",
			segment.ErrUnknownName, 4, 31, "hv", "rule", 21, `unknown name "rfm_monetery" (did you mean "rfm_monetary"?)`, 0},
		{"unknown name in double-quoted rule", head + "  - name: hv\n    rule: \"views_total > 1 and rfm_monetery >= 4\"\n",
			segment.ErrUnknownName, 4, 32, "hv", "rule", 21, "unknown name", 0},
		{"unknown name in single-quoted rule", head + "  - name: hv\n    rule: 'views_total > 1 and rfm_monetery >= 4'\n",
			segment.ErrUnknownName, 4, 32, "hv", "rule", 21, "unknown name", 0},
		{"escaped quoted rule: scalar start", head + "  - name: hv\n    rule: \"top_brand == \\\"a\\\" and x > 1\"\n",
			segment.ErrUnknownName, 4, 11, "hv", "rule", 22, `unknown name "x"`, 0},
		{"block rule: scalar start", head + "  - name: hv\n    rule: |\n      views_total > 1\n      and x > 1\n",
			segment.ErrUnknownName, 4, 11, "hv", "rule", 21, `unknown name "x"`, 0},
		{"exit_rule syntax", head + "  - name: hv\n    rule: views_total > 1\n    exit_rule: views_total = 1\n",
			segment.ErrSyntax, 5, 28, "hv", "exit_rule", 13, "use ==", 0},
		{"rule type error", head + "  - name: hv\n    rule: views_total > 7d\n",
			segment.ErrType, 4, 25, "hv", "rule", 15, "not measured in days", 0},
		{"empty rule", head + "  - name: hv\n    rule: ''\n",
			segment.ErrSyntax, 4, 12, "hv", "rule", 1, "empty rule", 0},
		{"missing rule", head + "  - name: hv\n    description: x\n",
			segment.ErrInvalid, 3, 5, "hv", "", 0, "missing rule", 0},
		{"null rule", head + "  - name: hv\n    rule:\n",
			segment.ErrInvalid, 4, 5, "hv", "", 0, "missing rule", 0},
		{"missing name", head + "  - rule: views_total > 1\n",
			segment.ErrInvalid, 3, 5, "#1", "", 0, "missing name", 0},
		{"bad name", head + "  - name: High-Value\n    rule: views_total > 1\n",
			segment.ErrInvalid, 3, 11, "#1", "name", 0, `invalid name "High-Value"`, 0},
		{"long name", head + "  - name: " + strings.Repeat("a", 65) + "\n    rule: views_total > 1\n",
			segment.ErrInvalid, 3, 11, "#1", "name", 0, "invalid name", 0},
		{"duplicate name", head + "  - name: a\n    rule: views_total > 1\n  - name: a\n    rule: views_total > 2\n",
			segment.ErrInvalid, 5, 5, "a", "name", 0, `segment name "a" already used at line 3`, 0},
		{"unknown key", head + "  - name: a\n    rule: views_total > 1\n    exitrule: views_total < 1\n",
			segment.ErrInvalid, 5, 5, "a", "", 0, `unknown key "exitrule" (did you mean "exit_rule"?)`, 0},
		{"repeated key", head + "  - name: a\n    rule: views_total > 1\n    rule: views_total > 2\n",
			segment.ErrInvalid, 5, 5, "a", "", 0, `key "rule" repeated`, 0},
		{"rule not scalar", head + "  - name: a\n    rule: [views_total > 1]\n",
			segment.ErrInvalid, 4, 11, "a", "rule", 0, "expected a scalar, found a list", 0},
		{"time_relative not bool", head + "  - name: a\n    rule: days_since_last_seen > 1\n    time_relative: yes\n",
			segment.ErrInvalid, 5, 20, "a", "time_relative", 0, `expected true or false, found "yes"`, 0},
		{"time_relative without clock", head + "  - name: a\n    rule: views_total > 1\n    time_relative: true\n",
			segment.ErrInvalid, 5, 20, "a", "time_relative", 0, "no rule references a clock", 0},
		{"segment not a mapping", head + "  - high_value\n",
			segment.ErrInvalid, 3, 5, "#1", "", 0, "expected a mapping with name and rule, found a scalar", 0},
		{"segments not a list", "version: 1\nsegments: {a: 1}\n",
			segment.ErrInvalid, 2, 11, "", "segments", 0, "expected a list of segments, found a mapping", 0},
		{"missing version", "segments: []\n",
			segment.ErrInvalid, 1, 1, "", "", 0, "missing version", 0},
		{"bad version", "version: 2\nsegments: []\n",
			segment.ErrInvalid, 1, 10, "", "version", 0, `unsupported version "2"`, 0},
		{"missing segments", "version: 1\n",
			segment.ErrInvalid, 1, 1, "", "", 0, "missing segments", 0},
		{"unknown top-level key", "version: 1\nsegment: []\n",
			segment.ErrInvalid, 2, 1, "", "", 0, `unknown key "segment"`, 0},
		{"repeated top-level key", "version: 1\nversion: 1\nsegments: []\n",
			segment.ErrInvalid, 2, 1, "", "", 0, `key "version" repeated`, 0},
		{"root not a mapping", "- a\n",
			segment.ErrInvalid, 1, 1, "", "", 0, "expected a mapping with version and segments, found a list", 0},
		{"empty file", "",
			segment.ErrInvalid, 0, 0, "", "", 0, "empty file", 0},
		{"comment only", "# nothing\n",
			segment.ErrInvalid, 0, 0, "", "", 0, "empty file", 0},
		{"yaml syntax", "version: 1\nsegments: [\n",
			segment.ErrYAML, 2, 0, "", "", 0, "did not find expected node content", 0},
		{"yaml tabs", "version: 1\nsegments:\n\t- name: a\n",
			segment.ErrYAML, 3, 0, "", "", 0, "found character that cannot start any token", 0},
		{"several errors are all reported", head + "  - name: a\n    rule: x > 1\n  - name: b\n    rule: y > 1\n",
			segment.ErrUnknownName, 4, 11, "a", "rule", 1, `unknown name "x"`, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := segment.Parse("f.yaml", []byte(tt.src), segment.Config{})
			if err == nil {
				t.Fatal("no error")
			}
			e := asError(t, err)
			if !errors.Is(e, tt.err) || e.File != "f.yaml" || e.Line != tt.line || e.Column != tt.col || e.Segment != tt.seg ||
				e.Field != tt.field || e.RuleColumn != tt.ruleCol || !strings.Contains(e.Msg, tt.msg) {
				t.Fatalf("got  %v\n%+v\nwant %v at %d:%d segment %q field %q rule column %d, message containing %q",
					err, *e, tt.err, tt.line, tt.col, tt.seg, tt.field, tt.ruleCol, tt.msg)
			}
			if n := strings.Count(err.Error(), "f.yaml"); n < max(1, tt.wantErrsMin) {
				t.Fatalf("%d errors reported, want at least %d: %v", n, tt.wantErrsMin, err)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	_, err := segment.Parse("segments.yaml", []byte("version: 1\nsegments:\n  - name: high_value\n    rule: rfm_monetery >= 4\n"), segment.Config{})
	want := `segments.yaml:4:11: segment "high_value": rule: column 1: unknown name "rfm_monetery" (did you mean "rfm_monetary"?)`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v\nwant    %s", err, want)
	}
	_, err = segment.ParseRule("views_total >", segment.Names{})
	if want := "column 14: unexpected end of rule, expected a name, number or string"; err == nil || err.Error() != want {
		t.Fatalf("error = %v\nwant    %s", err, want)
	}
}

func TestParseLimits(t *testing.T) {
	big := make([]byte, segment.MaxFileBytes+1)
	if _, err := segment.Parse("big.yaml", big, segment.Config{}); !errors.Is(err, segment.ErrTooLarge) {
		t.Errorf("oversized file: %v", err)
	}
	var b strings.Builder
	b.WriteString("version: 1\nsegments:\n")
	for i := 0; i <= segment.MaxSegments; i++ {
		b.WriteString("  - {name: s" + strings.Repeat("x", i%3) + ", rule: views_total > 1}\n")
	}
	if _, err := segment.Parse("many.yaml", []byte(b.String()), segment.Config{}); !errors.Is(err, segment.ErrTooLarge) {
		t.Errorf("%d segments: %v", segment.MaxSegments+1, err)
	}
	var many strings.Builder
	many.WriteString("version: 1\nsegments:\n")
	for i := 0; i < 50; i++ {
		many.WriteString("  - {name: n, rule: nope > 1}\n")
	}
	_, err := segment.Parse("errs.yaml", []byte(many.String()), segment.Config{})
	if n := strings.Count(err.Error(), "errs.yaml"); n != 20 {
		t.Errorf("%d errors reported, want the first 20", n)
	}
}

func TestParseBadNames(t *testing.T) {
	_, err := segment.Parse("f.yaml", []byte("version: 1\nsegments: []\n"), segment.Config{Names: segment.Names{Values: []string{"x", "x"}}})
	if !errors.Is(err, segment.ErrNames) {
		t.Fatalf("duplicate names: %v, want ErrNames", err)
	}
	if err := (segment.Config{Names: segment.Names{Values: []string{"x", "x"}}}).Validate(); !errors.Is(err, segment.ErrNames) {
		t.Fatalf("Config.Validate: %v", err)
	}
	if err := (segment.Config{}).Validate(); err != nil {
		t.Fatalf("zero Config.Validate: %v", err)
	}
}

func TestParseAliases(t *testing.T) {
	c := mustParse(t, `version: 1
segments:
  - name: a
    rule: &r views_total > 1
  - name: b
    rule: *r
`)
	if c.Len() != 2 || c.Segments()[1].Rule.String() != "views_total > 1" {
		t.Fatalf("aliases: %+v", c.Segments())
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s.yaml")
	if err := os.WriteFile(p, []byte("version: 1\nsegments:\n  - name: a\n    rule: x > 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := segment.Load(p, segment.Config{})
	if e := asError(t, err); e.File != p || e.Line != 4 {
		t.Fatalf("Load error %v", err)
	}
	if _, err := segment.Load(filepath.Join(dir, "missing.yaml"), segment.Config{}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, segment.MaxFileBytes+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := segment.Load(big, segment.Config{}); !errors.Is(err, segment.ErrTooLarge) {
		t.Fatalf("big file: %v", err)
	}
}
