package segment

import (
	"math"

	"github.com/streamprofile/streamprofile/features"
)

// ProfileInput is an Input over a features.Profile, a map of model scores
// and a Deciles provider. Build one per evaluation with NewProfileInput; it
// is not safe for concurrent use (it caches affinity names).
type ProfileInput struct {
	profile *features.Profile
	scores  map[string]float64
	deciles Deciles
	tops    map[string][]string
}

// NewProfileInput returns an Input reading features from p, scores from
// scores (absent or NaN: missing) and score deciles from d (nil: every
// decile missing). p may be nil (every feature missing).
func NewProfileInput(p *features.Profile, scores map[string]float64, d Deciles) *ProfileInput {
	return &ProfileInput{profile: p, scores: scores, deciles: d}
}

// Value returns a feature from the profile's vector, else a score.
func (pi *ProfileInput) Value(name string) (float64, bool) {
	if pi.profile != nil {
		if v, ok := pi.profile.Vector.Get(name); ok {
			return v, true
		}
	}
	v, ok := pi.scores[name]
	return v, ok && !math.IsNaN(v)
}

// Top returns the names of the profile's affinities in dim, strongest
// first.
func (pi *ProfileInput) Top(dim string) []string {
	if pi.profile == nil {
		return nil
	}
	if t, ok := pi.tops[dim]; ok {
		return t
	}
	affs := pi.profile.Affinities[dim]
	t := make([]string, len(affs))
	for i, a := range affs {
		t[i] = a.Name
	}
	if pi.tops == nil {
		pi.tops = make(map[string][]string, len(features.Dims))
	}
	pi.tops[dim] = t
	return t
}

// Decile ranks the user's score with the Deciles provider.
func (pi *ProfileInput) Decile(score string) (int, bool) {
	v, ok := pi.scores[score]
	if !ok || pi.deciles == nil {
		return 0, false
	}
	return pi.deciles.Decile(score, v)
}
