package scorer

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/streamprofile/streamprofile/model/registry"
	"github.com/streamprofile/streamprofile/observability"
	"github.com/streamprofile/streamprofile/sink/segment"
)

// Default topic and group names.
const (
	DefaultTopic         = "profile-examples"
	DefaultChangesTopic  = "segment-changes"
	DefaultRetargetTopic = "retarget"
	DefaultGroup         = "streamprofile-scorer"
	// ErasureStep is the step name the scorer acknowledges on erasure
	// receipts (features.Store.AckErasure).
	ErasureStep = "scorer"
)

// Config configures a Scorer. A zero field takes the default its
// documentation states; Validate reports settings that are invalid.
type Config struct {
	// Topic is the snapshot topic (features.Snapshot, keyed by user).
	// Default "profile-examples".
	Topic string `yaml:"topic"`
	// ChangesTopic receives segment changes (segment-changes-v1). Default
	// "segment-changes".
	ChangesTopic string `yaml:"changes_topic"`
	// RetargetTopic receives retargeting triggers (retarget-v1). Default
	// "retarget".
	RetargetTopic string `yaml:"retarget_topic"`
	// Group is the consumer group; it also scopes the partition
	// checkpoints and timer sets in Redis. Default "streamprofile-scorer".
	Group string `yaml:"group"`
	// Prefix starts every Redis key; it must be the ingester's (the
	// scorer's per-user keys sit beside the profile). Default "sp".
	Prefix string `yaml:"prefix"`
	// Catalogue returns the segment catalogue in force; it is called once
	// per batch, so a hot-reloaded catalogue (segment.Watcher.Current)
	// takes effect at the next batch. Default: the embedded default
	// catalogue (segment.Default).
	Catalogue func() *segment.Catalogue `yaml:"-"`
	// Champion holds the served model (kept current by a
	// registry.Watcher). Default an empty holder: no network scores, only
	// rules that do not need them can match.
	Champion *registry.Champion `yaml:"-"`

	// Lateness holds event-time timers back: a partition's clock is its
	// newest snapshot time minus Lateness. With the ingester's allowed
	// lateness, no snapshot arrives older than the clock, so timers never
	// fire before an earlier event of their user. Default 10m.
	Lateness time.Duration `yaml:"lateness"`
	// IdleAfter is how long a partition may receive nothing before its
	// clock advances with processing time (wall time elapsed since the
	// last record), so timers fire when no events arrive. Default 30s.
	IdleAfter time.Duration `yaml:"idle_after"`
	// IdleRate is how much event time an idle partition's clock advances
	// per unit of processing time. Default 1 (real time); a replay of
	// history (the demo) sets it higher so timers fire within seconds
	// after the data ends.
	IdleRate float64 `yaml:"idle_rate"`
	// Tick is how often an idle processor advances its clock and looks for
	// due timers. Default 1s.
	Tick time.Duration `yaml:"tick"`
	// MaxTimers bounds the timers fired in one step. Default 256.
	MaxTimers int `yaml:"max_timers"`

	// FlushEvents flushes a partition once this many snapshots are
	// pending. Default 500.
	FlushEvents int `yaml:"flush_events"`
	// FlushInterval flushes a partition once its oldest unflushed record
	// is this old. Default 20ms.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// MaxBatch is the most queued snapshots processed in one step (one
	// Redis load round trip). Default 256.
	MaxBatch int `yaml:"max_batch"`
	// CacheUsers bounds the users cached per partition. Default 100000.
	CacheUsers int `yaml:"cache_users"`
	// ShutdownTimeout bounds the final flush. Default 10s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`

	// Retention is how long (event time) a user without activity keeps
	// memberships and scorer state: when it passes, the user leaves every
	// segment (reason note "retention") and the scorer's keys are deleted.
	// It must exceed every time-relative rule's horizon. Default 120 days.
	Retention time.Duration `yaml:"retention"`
	// TTL is the wall-clock expiry of the scorer's per-user keys,
	// refreshed on every write; a safety net for users whose retention
	// timer never fires. Default Retention + 30 days.
	TTL time.Duration `yaml:"ttl"`

	// ExplainTop is how many contributions an explanation keeps per
	// score. Default 5 (0 means the default); -1 turns explanations off,
	// for deployments that do not need them (they are about half of the
	// score role's CPU per snapshot, see BENCHMARKS.md): outputs then
	// carry no contributions.
	ExplainTop int `yaml:"explain_top"`
	// Triggers configures retargeting triggers.
	Triggers TriggerConfig `yaml:"triggers"`
	// Items configures the item statistics behind recommendations and
	// price drops.
	Items ItemsConfig `yaml:"items"`
	// Sketch configures the per-score decile sketches; see
	// segment.SketchConfig for defaults.
	Sketch segment.SketchConfig `yaml:"sketch"`

	// Tracer continues the trace of every snapshot (the ingester's, from
	// the record's headers) in a consume span, and carries it into each
	// segment change and trigger the snapshot causes: an emit span, ended
	// once the flush that sends the record is done, whose context is in
	// the record's headers. Changes and triggers of timers carry no trace.
	// Default nil: tracing off.
	Tracer *observability.Tracer `yaml:"-"`
	// Metrics receives the end-to-end latency of every change and trigger
	// caused by an event, observed when Kafka acknowledged it
	// (streamprofile_e2e_latency_seconds with output OutputSegmentChange
	// or observability.OutputTrigger; Stats keeps its own quantiles
	// either way). Default nil: not observed.
	Metrics *observability.Metrics `yaml:"-"`
	// Now is the processing clock (for idle partitions and latency).
	// Default time.Now.
	Now func() time.Time `yaml:"-"`
	// Logger receives operational logs. Default slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// OutputSegmentChange is the output label of the end-to-end latency of
// segment changes (streamprofile_e2e_latency_seconds); triggers use
// observability.OutputTrigger.
const OutputSegmentChange = "segment_change"

// TriggerConfig configures retargeting triggers. Every field states its
// default.
type TriggerConfig struct {
	// CartAfter: a cart with no purchase within CartAfter (event time) of
	// the user's last cart is abandoned. Default 30m.
	CartAfter time.Duration `yaml:"cart_after"`
	// BrowseIntent is the purchase_propensity at or above which a view is
	// high intent. Default 0.2.
	BrowseIntent float64 `yaml:"browse_intent"`
	// BrowseIdle: high-intent browsing without a cart is abandoned after
	// BrowseIdle without any event. Default 30m.
	BrowseIdle time.Duration `yaml:"browse_idle"`
	// WinBackChurn is the churn_risk at or above which a valuable customer
	// is won back (1 − p_alive when no network score exists). Default 0.6.
	WinBackChurn float64 `yaml:"win_back_churn"`
	// WinBackIdle is how long a valuable customer must have been inactive
	// for win-back. Default 14 days.
	WinBackIdle time.Duration `yaml:"win_back_idle"`
	// WinBackMinPurchases and WinBackMinRevenue define a previously
	// valuable customer: at least that many purchases and that revenue.
	// Defaults 2 and 100.
	WinBackMinPurchases float64 `yaml:"win_back_min_purchases"`
	WinBackMinRevenue   float64 `yaml:"win_back_min_revenue"`
	// PriceDrop is the relative drop below the price a user viewed that
	// triggers price-drop interest: new ≤ viewed × (1 − PriceDrop).
	// Default 0.05.
	PriceDrop float64 `yaml:"price_drop"`
	// MaxPerDay caps the triggers of one kind per user per UTC day (event
	// time). Default 1.
	MaxPerDay int `yaml:"max_per_day"`
	// Quiet suppresses every trigger within Quiet after the user's last
	// purchase. Default 24h.
	Quiet time.Duration `yaml:"quiet"`
	// Expiry is how long a trigger stays actionable, per kind; a trigger
	// whose expiry has already passed when it fires is suppressed
	// (reason "expired"). Defaults: cart_abandonment 24h,
	// browse_abandonment 24h, price_drop 72h, win_back 7 days.
	Expiry map[string]time.Duration `yaml:"expiry"`
	// Channels are the channel hints per kind. Defaults:
	// cart_abandonment [email push], browse_abandonment [display push],
	// price_drop [email push], win_back [email].
	Channels map[string][]string `yaml:"channels"`
	// Recommend is the number of recommended items per trigger. Default 8.
	Recommend int `yaml:"recommend"`
}

// ItemsConfig bounds the per-partition item statistics. Every field states
// its default.
type ItemsConfig struct {
	// MaxItems bounds the items tracked per partition; the least popular
	// are dropped first. Default 10000.
	MaxItems int `yaml:"max_items"`
	// Neighbours bounds the co-occurring items kept per item. Default 8.
	Neighbours int `yaml:"neighbours"`
	// Watchers bounds the users per item waiting for a price drop (the
	// most recent viewers). Default 8.
	Watchers int `yaml:"watchers"`
	// PerCategory bounds the popular items kept per category. Default 16.
	PerCategory int `yaml:"per_category"`
	// MaxCategories bounds the categories tracked. Default 2000.
	MaxCategories int `yaml:"max_categories"`
	// HalfLife is the decay of popularity and co-occurrence counts, in
	// event time. Default 7 days.
	HalfLife time.Duration `yaml:"half_life"`
	// SaveInterval is how often (processing time) a partition saves its
	// item statistics with its checkpoint; a restart replays at most this
	// much of the partition to rebuild them. Default 30s.
	SaveInterval time.Duration `yaml:"save_interval"`
}

// Trigger kinds.
const (
	KindCartAbandonment   = "cart_abandonment"
	KindBrowseAbandonment = "browse_abandonment"
	KindPriceDrop         = "price_drop"
	KindWinBack           = "win_back"
)

// Kinds returns the trigger kinds.
func Kinds() []string {
	return []string{KindCartAbandonment, KindBrowseAbandonment, KindPriceDrop, KindWinBack}
}

// Suppression reasons.
const (
	SuppressConsent = "consent" // the user's last consent withdrew ads
	SuppressQuiet   = "quiet"   // within the quiet period after a purchase
	SuppressCap     = "cap"     // the kind's daily cap is reached
	SuppressExpired = "expired" // fired after its expiry had passed
)

// SuppressReasons returns the suppression reasons.
func SuppressReasons() []string {
	return []string{SuppressConsent, SuppressQuiet, SuppressCap, SuppressExpired}
}

func (c TriggerConfig) withDefaults() TriggerConfig {
	if c.CartAfter == 0 {
		c.CartAfter = 30 * time.Minute
	}
	if c.BrowseIntent == 0 {
		c.BrowseIntent = 0.2
	}
	if c.BrowseIdle == 0 {
		c.BrowseIdle = 30 * time.Minute
	}
	if c.WinBackChurn == 0 {
		c.WinBackChurn = 0.6
	}
	if c.WinBackIdle == 0 {
		c.WinBackIdle = 14 * 24 * time.Hour
	}
	if c.WinBackMinPurchases == 0 {
		c.WinBackMinPurchases = 2
	}
	if c.WinBackMinRevenue == 0 {
		c.WinBackMinRevenue = 100
	}
	if c.PriceDrop == 0 {
		c.PriceDrop = 0.05
	}
	if c.MaxPerDay == 0 {
		c.MaxPerDay = 1
	}
	if c.Quiet == 0 {
		c.Quiet = 24 * time.Hour
	}
	exp := map[string]time.Duration{
		KindCartAbandonment: 24 * time.Hour, KindBrowseAbandonment: 24 * time.Hour,
		KindPriceDrop: 72 * time.Hour, KindWinBack: 7 * 24 * time.Hour,
	}
	for k, v := range c.Expiry {
		exp[k] = v
	}
	c.Expiry = exp
	ch := map[string][]string{
		KindCartAbandonment: {"email", "push"}, KindBrowseAbandonment: {"display", "push"},
		KindPriceDrop: {"email", "push"}, KindWinBack: {"email"},
	}
	for k, v := range c.Channels {
		ch[k] = v
	}
	c.Channels = ch
	if c.Recommend == 0 {
		c.Recommend = 8
	}
	return c
}

func (c TriggerConfig) validate() error {
	switch {
	case c.CartAfter < 0 || c.BrowseIdle < 0 || c.WinBackIdle < 0 || c.Quiet < 0:
		return fmt.Errorf("%w: trigger durations must not be negative", ErrConfig)
	case !(c.BrowseIntent > 0 && c.BrowseIntent <= 1):
		return fmt.Errorf("%w: browse_intent %v outside (0, 1]", ErrConfig, c.BrowseIntent)
	case !(c.WinBackChurn > 0 && c.WinBackChurn <= 1):
		return fmt.Errorf("%w: win_back_churn %v outside (0, 1]", ErrConfig, c.WinBackChurn)
	case !(c.PriceDrop > 0 && c.PriceDrop < 1):
		return fmt.Errorf("%w: price_drop %v outside (0, 1)", ErrConfig, c.PriceDrop)
	case c.MaxPerDay < 0 || c.MaxPerDay > 1000:
		return fmt.Errorf("%w: max_per_day %d outside [0, 1000]", ErrConfig, c.MaxPerDay)
	case c.Recommend < 0 || c.Recommend > 100:
		return fmt.Errorf("%w: recommend %d outside [0, 100]", ErrConfig, c.Recommend)
	}
	for k, d := range c.Expiry {
		if !validKind(k) || d <= 0 {
			return fmt.Errorf("%w: expiry %s=%v: want a trigger kind and a positive duration", ErrConfig, k, d)
		}
	}
	for k, chs := range c.Channels {
		if !validKind(k) || len(chs) == 0 || len(chs) > 8 {
			return fmt.Errorf("%w: channels of %q: want a trigger kind and 1 to 8 channels", ErrConfig, k)
		}
	}
	return nil
}

func validKind(k string) bool {
	for _, x := range Kinds() {
		if x == k {
			return true
		}
	}
	return false
}

func (c ItemsConfig) withDefaults() ItemsConfig {
	if c.MaxItems == 0 {
		c.MaxItems = 10000
	}
	if c.Neighbours == 0 {
		c.Neighbours = 8
	}
	if c.Watchers == 0 {
		c.Watchers = 8
	}
	if c.PerCategory == 0 {
		c.PerCategory = 16
	}
	if c.MaxCategories == 0 {
		c.MaxCategories = 2000
	}
	if c.HalfLife == 0 {
		c.HalfLife = 7 * 24 * time.Hour
	}
	if c.SaveInterval == 0 {
		c.SaveInterval = 30 * time.Second
	}
	return c
}

func (c ItemsConfig) validate() error {
	switch {
	case c.MaxItems < 1 || c.MaxItems > 1_000_000:
		return fmt.Errorf("%w: items max_items %d outside [1, 1000000]", ErrConfig, c.MaxItems)
	case c.Neighbours < 1 || c.Neighbours > 64:
		return fmt.Errorf("%w: items neighbours %d outside [1, 64]", ErrConfig, c.Neighbours)
	case c.Watchers < 1 || c.Watchers > 64:
		return fmt.Errorf("%w: items watchers %d outside [1, 64]", ErrConfig, c.Watchers)
	case c.PerCategory < 1 || c.PerCategory > 256:
		return fmt.Errorf("%w: items per_category %d outside [1, 256]", ErrConfig, c.PerCategory)
	case c.MaxCategories < 1 || c.MaxCategories > 100_000:
		return fmt.Errorf("%w: items max_categories %d outside [1, 100000]", ErrConfig, c.MaxCategories)
	case c.HalfLife < time.Minute:
		return fmt.Errorf("%w: items half_life %v below 1m", ErrConfig, c.HalfLife)
	case c.SaveInterval < 10*time.Millisecond:
		return fmt.Errorf("%w: items save_interval %v below 10ms", ErrConfig, c.SaveInterval)
	}
	return nil
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.ChangesTopic == "" {
		c.ChangesTopic = DefaultChangesTopic
	}
	if c.RetargetTopic == "" {
		c.RetargetTopic = DefaultRetargetTopic
	}
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.Prefix == "" {
		c.Prefix = "sp"
	}
	if c.Champion == nil {
		c.Champion = &registry.Champion{}
	}
	if c.Lateness == 0 {
		c.Lateness = 10 * time.Minute
	}
	if c.IdleAfter == 0 {
		c.IdleAfter = 30 * time.Second
	}
	if c.IdleRate <= 0 {
		c.IdleRate = 1
	}
	if c.Tick == 0 {
		c.Tick = time.Second
	}
	if c.MaxTimers == 0 {
		c.MaxTimers = 256
	}
	if c.FlushEvents == 0 {
		c.FlushEvents = 500
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = 20 * time.Millisecond
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 256
	}
	if c.CacheUsers == 0 {
		c.CacheUsers = 100000
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.Retention == 0 {
		c.Retention = 120 * 24 * time.Hour
	}
	if c.TTL == 0 {
		c.TTL = c.Retention + 30*24*time.Hour
	}
	if c.ExplainTop == 0 {
		c.ExplainTop = 5
	}
	c.Triggers = c.Triggers.withDefaults()
	c.Items = c.Items.withDefaults()
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports invalid settings (after defaults).
func (c Config) Validate() error {
	c = c.WithDefaults()
	for _, s := range []struct{ what, v string }{{"prefix", c.Prefix}, {"group", c.Group}} {
		if strings.ContainsAny(s.v, "{} ") {
			return fmt.Errorf("%w: %s %q must not contain braces or spaces", ErrConfig, s.what, s.v)
		}
	}
	topics := map[string]bool{c.Topic: true}
	for _, t := range []string{c.ChangesTopic, c.RetargetTopic} {
		if topics[t] {
			return fmt.Errorf("%w: topics must differ (%q used twice)", ErrConfig, t)
		}
		topics[t] = true
	}
	switch {
	case c.Lateness < 0:
		return fmt.Errorf("%w: negative lateness", ErrConfig)
	case c.IdleAfter < 0 || c.Tick < time.Millisecond:
		return fmt.Errorf("%w: idle_after must not be negative and tick at least 1ms", ErrConfig)
	case c.MaxTimers < 1 || c.FlushEvents < 1 || c.MaxBatch < 1 || c.CacheUsers < 1:
		return fmt.Errorf("%w: max_timers, flush_events, max_batch and cache_users must be positive", ErrConfig)
	case c.FlushInterval <= 0 || c.ShutdownTimeout <= 0:
		return fmt.Errorf("%w: flush_interval and shutdown_timeout must be positive", ErrConfig)
	case c.Retention < 24*time.Hour:
		return fmt.Errorf("%w: retention %v below 1 day", ErrConfig, c.Retention)
	case c.TTL < c.Retention:
		return fmt.Errorf("%w: ttl %v below retention %v", ErrConfig, c.TTL, c.Retention)
	case c.ExplainTop < -1 || c.ExplainTop > 64:
		return fmt.Errorf("%w: explain_top %d outside [-1, 64] (-1: off)", ErrConfig, c.ExplainTop)
	}
	if err := c.Triggers.validate(); err != nil {
		return err
	}
	if err := c.Items.validate(); err != nil {
		return err
	}
	return c.Sketch.Validate()
}
