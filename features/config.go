package features

import (
	"errors"
	"fmt"
	"time"
)

// Config holds the definitions of the features. Every field documents its
// default; the zero Config is replaced field by field with DefaultConfig by
// WithDefaults. The same Config must be used by every ingester of a
// deployment, since it decides what the stored state means.
type Config struct {
	// AllowedLateness is how far behind its partition's newest event time an
	// event may be and still be applied. Events older than that are
	// dead-lettered as late. It must match the stream's setting.
	// Default 10m; at most 12h.
	AllowedLateness time.Duration `yaml:"allowed_lateness"`

	// SessionGap ends a session after this much inactivity when events carry
	// no session_id. Default 30m.
	SessionGap time.Duration `yaml:"session_gap"`

	// SessionIDIdle is how long a session_id may stay idle before a later
	// event with the same id counts as a new session (and the id's state is
	// retired). Default 24h.
	SessionIDIdle time.Duration `yaml:"session_id_idle"`

	// DedupeRetention is how long (event time, behind the user's newest
	// event) an event id is remembered for de-duplication. Default 7d.
	DedupeRetention time.Duration `yaml:"dedupe_retention"`

	// MaxDedupeIDs bounds the event ids remembered per user; the oldest are
	// forgotten first. Default 4096.
	MaxDedupeIDs int `yaml:"max_dedupe_ids"`

	// MaxDistinctItems bounds the item-id set behind distinct_items; past it
	// distinct_items stops growing. Default 4096.
	MaxDistinctItems int `yaml:"max_distinct_items"`

	// HashBuckets is the number of murmur3 feature-hashing buckets for
	// category, brand and term affinities. Default 1<<20.
	HashBuckets uint32 `yaml:"hash_buckets"`

	// MaxAffinityEntries bounds each affinity map per user; the weakest entry
	// is evicted first. Default 64.
	MaxAffinityEntries int `yaml:"max_affinity_entries"`

	// AffinityHalfLife is the decay half-life of affinity weights.
	// Default 7d.
	AffinityHalfLife time.Duration `yaml:"affinity_half_life"`

	// TopK is how many entries each affinity list reports. Default 5.
	TopK int `yaml:"top_k"`

	// RFM holds the score thresholds; see RFMConfig.
	RFM RFMConfig `yaml:"rfm"`
}

// RFMConfig holds ascending thresholds for the 1–5 RFM scores. A user with no
// purchase scores 0 on all three.
type RFMConfig struct {
	// RecencyDays: a last purchase at most RecencyDays[i] days ago scores
	// 5-i; older scores 1. Default [1, 7, 30, 90].
	RecencyDays []float64 `yaml:"recency_days"`
	// Frequency: purchases_total ≥ Frequency[i] scores i+2; ≥1 scores 1.
	// Default [2, 3, 5, 10].
	Frequency []float64 `yaml:"frequency"`
	// Monetary: revenue_total ≥ Monetary[i] scores i+2; >0 scores 1.
	// Default [50, 200, 500, 1000].
	Monetary []float64 `yaml:"monetary"`
}

// DefaultConfig is the configuration used for every zero field.
var DefaultConfig = Config{
	AllowedLateness:    10 * time.Minute,
	SessionGap:         30 * time.Minute,
	SessionIDIdle:      24 * time.Hour,
	DedupeRetention:    7 * 24 * time.Hour,
	MaxDedupeIDs:       4096,
	MaxDistinctItems:   4096,
	HashBuckets:        1 << 20,
	MaxAffinityEntries: 64,
	AffinityHalfLife:   7 * 24 * time.Hour,
	TopK:               5,
	RFM: RFMConfig{
		RecencyDays: []float64{1, 7, 30, 90},
		Frequency:   []float64{2, 3, 5, 10},
		Monetary:    []float64{50, 200, 500, 1000},
	},
}

// WithDefaults returns c with every zero field set from DefaultConfig.
func (c Config) WithDefaults() Config {
	d := DefaultConfig
	if c.AllowedLateness == 0 {
		c.AllowedLateness = d.AllowedLateness
	}
	if c.SessionGap == 0 {
		c.SessionGap = d.SessionGap
	}
	if c.SessionIDIdle == 0 {
		c.SessionIDIdle = d.SessionIDIdle
	}
	if c.DedupeRetention == 0 {
		c.DedupeRetention = d.DedupeRetention
	}
	if c.MaxDedupeIDs == 0 {
		c.MaxDedupeIDs = d.MaxDedupeIDs
	}
	if c.MaxDistinctItems == 0 {
		c.MaxDistinctItems = d.MaxDistinctItems
	}
	if c.HashBuckets == 0 {
		c.HashBuckets = d.HashBuckets
	}
	if c.MaxAffinityEntries == 0 {
		c.MaxAffinityEntries = d.MaxAffinityEntries
	}
	if c.AffinityHalfLife == 0 {
		c.AffinityHalfLife = d.AffinityHalfLife
	}
	if c.TopK == 0 {
		c.TopK = d.TopK
	}
	if c.RFM.RecencyDays == nil {
		c.RFM.RecencyDays = d.RFM.RecencyDays
	}
	if c.RFM.Frequency == nil {
		c.RFM.Frequency = d.RFM.Frequency
	}
	if c.RFM.Monetary == nil {
		c.RFM.Monetary = d.RFM.Monetary
	}
	return c
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	var errs []error
	if c.AllowedLateness < 0 || c.AllowedLateness > 12*time.Hour {
		errs = append(errs, fmt.Errorf("features: allowed_lateness %s outside [0, 12h]", c.AllowedLateness))
	}
	if c.SessionGap < time.Second {
		errs = append(errs, fmt.Errorf("features: session_gap %s below 1s", c.SessionGap))
	}
	if c.SessionIDIdle < c.SessionGap {
		errs = append(errs, fmt.Errorf("features: session_id_idle %s below session_gap", c.SessionIDIdle))
	}
	if c.DedupeRetention < 0 {
		errs = append(errs, errors.New("features: dedupe_retention is negative"))
	}
	if c.MaxDedupeIDs < 1 || c.MaxDistinctItems < 1 || c.MaxAffinityEntries < 1 || c.TopK < 1 {
		errs = append(errs, errors.New("features: max_dedupe_ids, max_distinct_items, max_affinity_entries and top_k must be ≥ 1"))
	}
	if c.HashBuckets < 2 {
		errs = append(errs, errors.New("features: hash_buckets must be ≥ 2"))
	}
	if c.AffinityHalfLife < time.Second {
		errs = append(errs, errors.New("features: affinity_half_life below 1s"))
	}
	for name, th := range map[string][]float64{"recency_days": c.RFM.RecencyDays, "frequency": c.RFM.Frequency, "monetary": c.RFM.Monetary} {
		if len(th) != 4 {
			errs = append(errs, fmt.Errorf("features: rfm.%s needs 4 ascending thresholds, got %d", name, len(th)))
			continue
		}
		for i := 1; i < len(th); i++ {
			if th[i] <= th[i-1] {
				errs = append(errs, fmt.Errorf("features: rfm.%s thresholds must ascend", name))
				break
			}
		}
	}
	return errors.Join(errs...)
}
