package segment_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/sink/segment"
)

// sentinels every rule or catalogue error wraps one of.
var sentinels = []error{segment.ErrSyntax, segment.ErrUnknownName, segment.ErrType, segment.ErrInvalid, segment.ErrYAML, segment.ErrTooLarge}

func checkTyped(t *testing.T, err error) {
	t.Helper()
	var e *segment.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *segment.Error", err, err)
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("error %v wraps no sentinel", err)
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"rfm_monetary >= 4 and rfm_frequency >= 3",
		"days_since_last_seen >= 7d and days_since_last_seen < 90d",
		`top_category_root == "electronics" or "apple" not in brand_top`,
		"decile(purchase_propensity) >= 9",
		"not (views_total between 1 and 5) or churn_risk > 0.5e-1",
		"days_since_last_purchase == -1",
		`top_brand != 'it\'s'`,
		"((views_total > 1)", "views_total = 1", "7d < views_total", "",
	} {
		f.Add(s)
	}
	x := in{}.with("views_total", 3, "rfm_monetary", 4, "days_since_last_seen", 8, "brand", []string{"apple"}, "purchase_propensity", decile(9))
	f.Fuzz(func(t *testing.T, src string) {
		r, err := segment.ParseRule(src, segment.Names{})
		if err != nil {
			checkTyped(t, err)
			e := err.(*segment.Error)
			if len(src) <= segment.MaxRuleBytes && (e.RuleColumn < 1 || e.RuleColumn > len([]rune(src))+1) {
				t.Fatalf("error column %d outside the rule (%d characters): %v", e.RuleColumn, len([]rune(src)), err)
			}
			return
		}
		// A rule that parses evaluates without panicking, deterministically,
		// and reparses from its text.
		if a, b := r.Eval(x), r.Eval(x); a != b {
			t.Fatalf("Eval not deterministic: %v %v", a, b)
		}
		if len(r.Values(x)) != len(r.Refs()) {
			t.Fatal("Values and Refs differ in length")
		}
		if _, err := segment.ParseRule(r.String(), segment.Names{}); err != nil {
			t.Fatalf("String() does not reparse: %v", err)
		}
	})
}

func FuzzCatalogue(f *testing.F) {
	f.Add(segment.DefaultYAML())
	f.Add([]byte("version: 1\nsegments:\n  - name: a\n    rule: views_total > 1\n    exit_rule: views_total < 1\n    min_dwell: 1d\n"))
	f.Add([]byte("version: 1\nsegments:\n  - {name: a, rule: 'days_since_last_seen > 7d', time_relative: true}\n"))
	f.Add([]byte("version: 1\nsegments: [&a {name: a, rule: x}, *a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := segment.Parse("f.yaml", data, segment.Config{})
		if err != nil {
			checkTyped(t, err)
			return
		}
		// A valid catalogue evaluates without panicking.
		m, _ := c.Evaluate(in{}.with("views_total", 2), segment.Membership{}, t0)
		c.NextCheck(in{}.with("views_total", 2), m, t0)
	})
}

func FuzzMembership(f *testing.F) {
	m, _ := segment.NewMembership(map[string]time.Time{"high_value": t0, "silent": t0.Add(-day)})
	b, _ := m.MarshalBinary()
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{1, 0})
	f.Add([]byte{1, 1, 1, 'a', 0x80, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		var m segment.Membership
		if err := m.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, segment.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		// The encoding is canonical: a decoded input re-encodes to itself.
		out, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > 0 && !bytes.Equal(out, data) {
			t.Fatalf("re-encoding % x\n         of % x differs", out, data)
		}
	})
}
