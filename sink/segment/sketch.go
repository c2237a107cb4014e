package segment

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
)

// Deciles ranks a score value among all users' values of that score. The
// scorer implements it (Sketches does) and ProfileInput consults it.
type Deciles interface {
	// Decile returns the decile of value among the score's values, 1
	// (lowest tenth) to 10 (highest tenth); false when the score is not
	// tracked or too few values have been seen.
	Decile(score string, value float64) (int, bool)
}

// Defaults of SketchConfig.
const (
	DefaultSketchSize     = 4096
	DefaultSketchMinCount = 1000
	DefaultSketchRefresh  = 1024
	DefaultSketchSeed     = 1
	// MaxSketchSize bounds SketchConfig.Size (8 MiB per sketch).
	MaxSketchSize = 1 << 19
)

// SketchConfig configures a Sketch. A zero field takes its default.
type SketchConfig struct {
	// Size is the number of values the reservoir keeps; memory is
	// 16·Size bytes. Default 4096, at most MaxSketchSize.
	Size int
	// MinCount is how many values must have been added before Decile
	// answers. Default 1000.
	MinCount int
	// RefreshEvery bounds how stale the decile boundaries may be: they are
	// recomputed on the first query after RefreshEvery additions, or after
	// count/64 additions when that is fewer. Default 1024.
	RefreshEvery int
	// Seed seeds the reservoir's replacement choices, so a Sketch fed the
	// same values answers the same. Default 1.
	Seed uint64
}

func (c SketchConfig) withDefaults() SketchConfig {
	if c.Size == 0 {
		c.Size = DefaultSketchSize
	}
	if c.MinCount == 0 {
		c.MinCount = DefaultSketchMinCount
	}
	if c.RefreshEvery == 0 {
		c.RefreshEvery = DefaultSketchRefresh
	}
	if c.Seed == 0 {
		c.Seed = DefaultSketchSeed
	}
	return c
}

// Validate checks the effective values.
func (c SketchConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Size < 10 || c.Size > MaxSketchSize:
		return fmt.Errorf("%w: sketch size %d outside [10, %d]", ErrConfig, c.Size, MaxSketchSize)
	case c.MinCount < 1:
		return fmt.Errorf("%w: sketch min_count %d below 1", ErrConfig, c.MinCount)
	case c.RefreshEvery < 1:
		return fmt.Errorf("%w: sketch refresh_every %d below 1", ErrConfig, c.RefreshEvery)
	}
	return nil
}

// Sketch estimates the distribution of a stream of values in bounded
// memory: a uniform random sample (reservoir sampling, Vitter's Algorithm
// R) of Size of the values added so far. Until Size values have been added
// it holds all of them and its quantiles are exact.
//
// Error: the retained values are a simple random sample, without
// replacement, of the m = count values added. Take a decile boundary, the
// sample's q-quantile; its true rank in the stream is off by more than ε
// only if the sample's fraction of values below a fixed point (the
// stream's (q±ε)-quantile) is off by more than ε, which Hoeffding's
// inequality (valid without replacement) bounds by exp(−2·Size·ε²) on
// each side. For Size 4096 each boundary is within ±0.03 of its rank (the
// value called the 90th percentile lies between the 87th and the 93rd)
// with probability above 99.8%, and all nine together with probability
// above 98.8%; within ±0.02, each with probability above 92%. Boundaries
// may also lag by up to RefreshEvery additions (see SketchConfig).
//
// The stream is of observations, not users: a user scored ten times
// weighs ten times, and old scores stay in the sample as long as recent
// ones. A Sketch is safe for concurrent use.
type Sketch struct {
	mu      sync.Mutex
	cfg     SketchConfig
	rng     *rand.Rand
	count   uint64
	sample  []float64
	sorted  []float64 // snapshot of sample, sorted, as of count = at
	at      uint64
	cuts    [9]float64 // decile boundaries of sorted
	hasCuts bool
}

// splitmix64 scrambles a seed, so that nearby seeds (and PCG generators
// seeded like them elsewhere) give unrelated streams.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// NewSketch returns an empty Sketch.
func NewSketch(cfg SketchConfig) (*Sketch, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Sketch{
		cfg:    cfg,
		rng:    rand.New(rand.NewPCG(splitmix64(cfg.Seed), splitmix64(^cfg.Seed))),
		sample: make([]float64, 0, cfg.Size),
	}, nil
}

// Add adds a value. NaN is ignored.
func (s *Sketch) Add(x float64) {
	if math.IsNaN(x) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count++
	if len(s.sample) < s.cfg.Size {
		s.sample = append(s.sample, x)
		return
	}
	if j := s.rng.Uint64N(s.count); j < uint64(s.cfg.Size) {
		s.sample[j] = x
	}
}

// Count returns the number of values added.
func (s *Sketch) Count() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// refresh re-sorts the snapshot when it is stale. Called with mu held.
func (s *Sketch) refresh() {
	pending := s.count - s.at
	if s.hasCuts && pending < uint64(s.cfg.RefreshEvery) && pending*64 < s.count {
		return
	}
	if len(s.sample) == 0 {
		return
	}
	s.sorted = append(s.sorted[:0], s.sample...)
	slices.Sort(s.sorted)
	for i := range s.cuts {
		s.cuts[i] = nearestRank(s.sorted, float64(i+1)/10)
	}
	s.at, s.hasCuts = s.count, true
}

// nearestRank is the q-quantile of sorted values: the smallest value with
// at least a fraction q of the values at or below it.
func nearestRank(sorted []float64, q float64) float64 {
	k := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(k, 0), len(sorted)-1)]
}

// Quantile returns the q-quantile (0 ≤ q ≤ 1) of the values added, by
// nearest rank on the sample; false before the first value.
func (s *Sketch) Quantile(q float64) (float64, bool) {
	if !(q >= 0 && q <= 1) {
		return 0, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refresh()
	if !s.hasCuts {
		return 0, false
	}
	return nearestRank(s.sorted, q), true
}

// Boundaries returns the nine decile boundaries, the 10th to 90th
// percentiles; false before the first value.
func (s *Sketch) Boundaries() ([9]float64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refresh()
	return s.cuts, s.hasCuts
}

// Decile returns 1 plus the number of decile boundaries strictly below x:
// 10 means x is above the 90th percentile. A value tied with a boundary
// takes the lower decile, so that at most a tenth of the sample lies in
// decile 10, at most two tenths in deciles 9–10, and so on, however many
// values are tied. False until MinCount values have been added, and for
// NaN.
func (s *Sketch) Decile(x float64) (int, bool) {
	if math.IsNaN(x) {
		return 0, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.count < uint64(s.cfg.MinCount) {
		return 0, false
	}
	s.refresh()
	d := 1
	for _, c := range s.cuts {
		if x > c {
			d++
		}
	}
	return d, true
}

// Sketches keeps one Sketch per score and implements Deciles. The set of
// scores is fixed at construction; it is safe for concurrent use.
type Sketches struct {
	m map[string]*Sketch
}

// NewSketches returns a Sketch per score, each seeded from cfg.Seed and the
// score's name.
func NewSketches(cfg SketchConfig, scores ...string) (*Sketches, error) {
	cfg = cfg.withDefaults()
	ss := &Sketches{m: make(map[string]*Sketch, len(scores))}
	for _, name := range scores {
		if _, dup := ss.m[name]; dup {
			return nil, fmt.Errorf("%w: score %q listed twice", ErrConfig, name)
		}
		h := fnv.New64a()
		h.Write([]byte(name))
		c := cfg
		c.Seed = cfg.Seed ^ h.Sum64()
		if c.Seed == 0 {
			c.Seed = DefaultSketchSeed
		}
		s, err := NewSketch(c)
		if err != nil {
			return nil, err
		}
		ss.m[name] = s
	}
	return ss, nil
}

// Add adds a value of a score; false when the score is not tracked.
func (ss *Sketches) Add(score string, value float64) bool {
	s, ok := ss.m[score]
	if ok {
		s.Add(value)
	}
	return ok
}

// Sketch returns the score's sketch.
func (ss *Sketches) Sketch(score string) (*Sketch, bool) {
	s, ok := ss.m[score]
	return s, ok
}

// Decile implements Deciles.
func (ss *Sketches) Decile(score string, value float64) (int, bool) {
	s, ok := ss.m[score]
	if !ok {
		return 0, false
	}
	return s.Decile(value)
}
