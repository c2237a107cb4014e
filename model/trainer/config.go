package trainer

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/streamprofile/streamprofile/model/inputs"
	"github.com/streamprofile/streamprofile/model/nn"
)

// Config configures a Trainer. A zero field takes the default its
// documentation states; Validate checks the effective values.
type Config struct {
	// Arch is the network. Default inputs.DefaultArch(). A head named
	// inputs.HeadPurchase learns purchase propensity, one named
	// inputs.HeadRepeat repeat purchase; other heads are never labelled.
	Arch nn.Arch `yaml:"arch"`
	// PurchaseHorizon is H of purchase_propensity: the label is 1 when the
	// same user purchases in (t, t+H]. Default 30m.
	PurchaseHorizon time.Duration `yaml:"purchase_horizon"`
	// RepeatHorizon is D of repeat_purchase_90d: the label is 1 when the
	// customer purchases on a later UTC day within (t, t+D]. Default 90 days.
	RepeatHorizon time.Duration `yaml:"repeat_horizon"`
	// RepeatExamples says which snapshots become repeat-purchase examples
	// (only snapshots of customers, purchase_days ≥ 1, and at most one
	// pending per user per UTC day): "purchase" (purchase snapshots) or
	// "all" (any snapshot). Default "purchase".
	RepeatExamples string `yaml:"repeat_examples"`
	// AllowedLateness is subtracted from the largest event time seen in a
	// partition to form its watermark; a label is negative once the
	// watermark passes t+horizon. Use the ingester's allowed lateness.
	// Default 10m.
	AllowedLateness time.Duration `yaml:"allowed_lateness"`
	// MaxPending bounds the pending (not yet labelled) examples, counted
	// per task; beyond it the oldest are dropped and counted. Default
	// 200000.
	MaxPending int `yaml:"max_pending"`
	// DedupeSize is the number of recent snapshot ids remembered to drop
	// re-published snapshots. Default 100000.
	DedupeSize int `yaml:"dedupe_size"`
	// BatchSize is the micro-batch: training runs when this many examples
	// have matured. Default Arch.BatchSize (128).
	BatchSize int `yaml:"batch_size"`
	// BatchInterval trains a partial micro-batch when its oldest example
	// has waited this long (wall clock). Default 2s.
	BatchInterval time.Duration `yaml:"batch_interval"`
	// CheckpointBatches cuts a version every this many trained batches.
	// Default 50.
	CheckpointBatches int `yaml:"checkpoint_batches"`
	// CheckpointInterval cuts a version when the last one is this old
	// (wall clock) and something was trained since. Default 1m.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// Window is the prequential window (pairs per task and model) of the
	// reported metrics. Default 5000.
	Window int `yaml:"window"`
	// CurveEvery adds a learning-curve point every this many matured
	// purchase-propensity examples (repeat-purchase ones when the arch has
	// no purchase head). Default 1000.
	CurveEvery int `yaml:"curve_every"`
	// Gate decides promotions and rollbacks.
	Gate GateConfig `yaml:"gate"`
	// Logistic configures the online logistic-regression baseline.
	Logistic LogisticConfig `yaml:"logistic"`
	// BGNBD configures the BG/NBD (+ Gamma-Gamma) baseline.
	BGNBD BGNBDConfig `yaml:"bgnbd"`
	// ChampionPoll is how often (wall clock) the registry's champion is
	// re-read, to follow promotions and rollbacks made by the CLI.
	// Default 1s.
	ChampionPoll time.Duration `yaml:"champion_poll"`
	// AuditTrained stores, with every version's trainer state, the ids of
	// the examples learnt since the parent version ("<snapshot id>/<head>"),
	// so that what each version learnt can be audited. Default false.
	AuditTrained bool `yaml:"audit_trained"`
	// Topic is the input topic, recorded in versions. Default
	// "profile-examples".
	Topic string `yaml:"topic"`
	// OnTrain, when set, is called (under the trainer's lock) with every
	// trained micro-batch. It must not retain the slice.
	OnTrain func([]Trained) `yaml:"-"`
	// Logger. Default slog.Default().
	Logger *slog.Logger `yaml:"-"`
	// Now is the wall clock. Default time.Now.
	Now func() time.Time `yaml:"-"`

	// corrupt, in tests, permutes the labels of every micro-batch before
	// training (a deliberately corrupted challenger).
	corrupt bool
}

// GateConfig is the promotion gate and the rollback monitor.
type GateConfig struct {
	// Examples is the evaluation window: a challenger is decided once
	// this many of the examples it scored have matured for one task, and a
	// champion is judged for rollback over windows of this many. Default
	// 2000.
	Examples int `yaml:"examples"`
	// MinExamples is the fewest matured examples (with both classes) for
	// a task to count in a decision. Default 200.
	MinExamples int `yaml:"min_examples"`
	// AUCMargin: a challenger may be at most this much below the
	// champion's AUC; a champion this much below the previous good
	// version's is rolled back. With no champion a challenger needs AUC ≥
	// 0.5 + AUCMargin. Default 0.01.
	AUCMargin float64 `yaml:"auc_margin"`
	// LogLossMargin: a challenger's log loss may be at most this much above
	// the champion's. Default 0.01.
	LogLossMargin float64 `yaml:"logloss_margin"`
	// Disabled turns automatic promotion and rollback off (versions stay
	// candidates; use the CLI). Default false.
	Disabled bool `yaml:"disabled"`
}

// LogisticConfig configures the logistic baseline.
type LogisticConfig struct {
	// LearningRate is its SGD's starting step size; step n uses
	// LearningRate/√(1+n) (n capped at 2^20, so a long-running trainer
	// keeps adapting) and the bias steps 10× faster. Default 0.01.
	LearningRate float64 `yaml:"learning_rate"`
	// L2 penalty. Default 1e-4.
	L2 float64 `yaml:"l2"`
}

// BGNBDConfig configures the BG/NBD baseline.
type BGNBDConfig struct {
	// RefitExamples refits after this many new customer summaries.
	// Default 5000.
	RefitExamples int `yaml:"refit_examples"`
	// RefitInterval refits when the last fit is this old (wall clock) and
	// summaries changed. Default 5m.
	RefitInterval time.Duration `yaml:"refit_interval"`
	// MaxCustomers bounds the customer summaries kept for fitting (the
	// least recently updated are evicted). Default 100000.
	MaxCustomers int `yaml:"max_customers"`
	// MinCustomers is the fewest summaries to fit on. Default 100.
	MinCustomers int `yaml:"min_customers"`
}

// Repeat-example policies of Config.RepeatExamples.
const (
	RepeatAtPurchase = "purchase"
	RepeatAtAll      = "all"
)

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if len(c.Arch.Heads) == 0 && len(c.Arch.NumericFeatures) == 0 && len(c.Arch.TokenFields) == 0 {
		c.Arch = inputs.DefaultArch()
	}
	c.Arch = c.Arch.WithDefaults()
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defi := func(d *int, v int) {
		if *d == 0 {
			*d = v
		}
	}
	deff := func(d *float64, v float64) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.PurchaseHorizon, 30*time.Minute)
	def(&c.RepeatHorizon, 90*24*time.Hour)
	def(&c.AllowedLateness, 10*time.Minute)
	def(&c.BatchInterval, 2*time.Second)
	def(&c.CheckpointInterval, time.Minute)
	def(&c.ChampionPoll, time.Second)
	def(&c.BGNBD.RefitInterval, 5*time.Minute)
	if c.RepeatExamples == "" {
		c.RepeatExamples = RepeatAtPurchase
	}
	defi(&c.MaxPending, 200000)
	defi(&c.DedupeSize, 100000)
	defi(&c.BatchSize, c.Arch.BatchSize)
	defi(&c.CheckpointBatches, 50)
	defi(&c.Window, 5000)
	defi(&c.CurveEvery, 1000)
	defi(&c.Gate.Examples, 2000)
	defi(&c.Gate.MinExamples, 200)
	deff(&c.Gate.AUCMargin, 0.01)
	deff(&c.Gate.LogLossMargin, 0.01)
	deff(&c.Logistic.LearningRate, 0.01)
	deff(&c.Logistic.L2, 1e-4)
	defi(&c.BGNBD.RefitExamples, 5000)
	defi(&c.BGNBD.MaxCustomers, 100000)
	defi(&c.BGNBD.MinCustomers, 100)
	if c.Topic == "" {
		c.Topic = "profile-examples"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate checks the effective configuration (c.WithDefaults()).
func (c Config) Validate() error {
	d := c.WithDefaults()
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(f, a...)) }
	if err := d.Arch.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if headIndex(d.Arch, inputs.HeadPurchase) < 0 && headIndex(d.Arch, inputs.HeadRepeat) < 0 {
		return bad("arch has neither a %q nor a %q head", inputs.HeadPurchase, inputs.HeadRepeat)
	}
	switch {
	case d.PurchaseHorizon < 0 || d.RepeatHorizon < 0 || d.AllowedLateness < 0:
		return bad("horizons and lateness must not be negative")
	case d.RepeatHorizon < 24*time.Hour:
		return bad("repeat_horizon %v is under a day (the label needs a later UTC day)", d.RepeatHorizon)
	case d.RepeatExamples != RepeatAtPurchase && d.RepeatExamples != RepeatAtAll:
		return bad("repeat_examples %q is neither %q nor %q", d.RepeatExamples, RepeatAtPurchase, RepeatAtAll)
	case d.MaxPending < 1 || d.DedupeSize < 1 || d.BatchSize < 1 || d.CheckpointBatches < 1 || d.Window < 2 || d.CurveEvery < 1:
		return bad("max_pending, dedupe_size, batch_size, checkpoint_batches, curve_every must be ≥ 1 and window ≥ 2")
	case d.BatchInterval < 0 || d.CheckpointInterval < 0 || d.ChampionPoll < 0:
		return bad("intervals must not be negative")
	case d.Gate.Examples < 2 || d.Gate.MinExamples < 2 || d.Gate.MinExamples > d.Gate.Examples:
		return bad("gate: need 2 ≤ min_examples ≤ examples")
	case !(d.Gate.AUCMargin >= 0 && d.Gate.AUCMargin < 0.5) || !(d.Gate.LogLossMargin >= 0):
		return bad("gate margins must be ≥ 0 (auc_margin < 0.5)")
	case !(d.Logistic.LearningRate > 0 && d.Logistic.LearningRate <= 10) || !(d.Logistic.L2 >= 0 && d.Logistic.L2 < 1):
		return bad("logistic: learning_rate in (0, 10], l2 in [0, 1)")
	case d.BGNBD.RefitExamples < 1 || d.BGNBD.MaxCustomers < 1 || d.BGNBD.MinCustomers < 2 || d.BGNBD.RefitInterval < 0:
		return bad("bgnbd: refit_examples, max_customers ≥ 1, min_customers ≥ 2")
	}
	return nil
}

func headIndex(a nn.Arch, name string) int {
	for i, h := range a.Heads {
		if h == name {
			return i
		}
	}
	return -1
}
