package scorer

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/model/inputs"
)

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"zero value", func(*Config) {}, true},
		{"braces in prefix", func(c *Config) { c.Prefix = "a{b}" }, false},
		{"space in group", func(c *Config) { c.Group = "a b" }, false},
		{"same output topics", func(c *Config) { c.RetargetTopic = DefaultChangesTopic }, false},
		{"input as output", func(c *Config) { c.ChangesTopic = DefaultTopic }, false},
		{"negative lateness", func(c *Config) { c.Lateness = -time.Second }, false},
		{"retention below a day", func(c *Config) { c.Retention = time.Hour }, false},
		{"ttl below retention", func(c *Config) { c.Retention, c.TTL = 48*time.Hour, 24*time.Hour }, false},
		{"explain_top too large", func(c *Config) { c.ExplainTop = 65 }, false},
		{"explain_top -1 (off)", func(c *Config) { c.ExplainTop = -1 }, true},
		{"explain_top below -1", func(c *Config) { c.ExplainTop = -2 }, false},
		{"browse intent above 1", func(c *Config) { c.Triggers.BrowseIntent = 1.5 }, false},
		{"price drop of 100%", func(c *Config) { c.Triggers.PriceDrop = 1 }, false},
		{"expiry of an unknown kind", func(c *Config) { c.Triggers.Expiry = map[string]time.Duration{"spam": time.Hour} }, false},
		{"no channels", func(c *Config) { c.Triggers.Channels = map[string][]string{KindWinBack: {}} }, false},
		{"channels overridden", func(c *Config) { c.Triggers.Channels = map[string][]string{KindWinBack: {"sms"}} }, true},
		{"too many items", func(c *Config) { c.Items.MaxItems = 2_000_000 }, false},
		{"short half-life", func(c *Config) { c.Items.HalfLife = time.Second }, false},
		{"tiny sketch", func(c *Config) { c.Sketch.Size = 5 }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var cfg Config
			c.mod(&cfg)
			err := cfg.Validate()
			if (err == nil) != c.ok {
				t.Fatalf("Validate() = %v, want ok %v", err, c.ok)
			}
			if err != nil && !errors.Is(err, ErrConfig) && !strings.Contains(err.Error(), "sketch") {
				t.Fatalf("error %v does not wrap ErrConfig", err)
			}
		})
	}
	d := Config{}.WithDefaults()
	if d.Topic != "profile-examples" || d.ChangesTopic != "segment-changes" || d.RetargetTopic != "retarget" ||
		d.Lateness != 10*time.Minute || d.Triggers.Expiry[KindPriceDrop] != 72*time.Hour || d.TTL != d.Retention+30*24*time.Hour {
		t.Fatalf("defaults %+v", d)
	}
}

// Every input of the default network has a readable label.
func TestLabels(t *testing.T) {
	a := inputs.DefaultArch()
	for _, in := range append(a.NumericFeatures, a.TokenFields...) {
		if _, ok := labels[in]; !ok {
			t.Errorf("no label for %s", in)
		}
	}
	for _, d := range features.Defs {
		if Label(d.Name) == d.Name {
			t.Errorf("no label for feature %s", d.Name)
		}
	}
	if Label("some_new_feature") != "some new feature" {
		t.Error("fallback label")
	}
}

// Quantiles of the latency histogram are within a bucket (about 26%) of
// the exact ones.
func TestLatencyQuantiles(t *testing.T) {
	var l latency
	if l.quantile(0.5) != 0 {
		t.Fatal("quantile of nothing")
	}
	for i := 1; i <= 1000; i++ {
		l.observe(time.Duration(i) * time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {0.01, 10 * time.Millisecond}} {
		got := l.quantile(c.q)
		if r := float64(got) / float64(c.want); r < 1 || r > math.Pow(10, 0.1)+1e-9 {
			t.Errorf("q%.2f = %v, want within one bucket above %v", c.q, got, c.want)
		}
	}
	l.observe(-time.Second)
	l.observe(time.Hour * 1000)
	if l.count.Load() != 1002 {
		t.Fatal("extreme values not counted")
	}
}

// Cursors round-trip; anything else is rejected, never a panic.
func FuzzCursor(f *testing.F) {
	for _, c := range []string{"", "1f", "0.dXNlcg", "ff.YQ", "0", "1.", "x"} {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, c string) {
		cur, after, err := parseCursor(c)
		if err != nil {
			if !errors.Is(err, ErrBadCursor) {
				t.Fatalf("error %v does not wrap ErrBadCursor", err)
			}
			return
		}
		if c == "" {
			return
		}
		if again := formatCursor(cur, after); again != c {
			t.Fatalf("cursor %q decodes to (%d, %q), which encodes to %q", c, cur, after, again)
		}
	})
}
