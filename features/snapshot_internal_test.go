package features

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// TestAppendJSONFloatIntegers checks the integer shortcut of appendJSONFloat
// against encoding/json on integers around every power of two up to and
// past 2^53, where the shortcut stops, and on −0.
func TestAppendJSONFloatIntegers(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var in []float64
	for e := 0; e <= 70; e++ {
		p := math.Ldexp(1, e)
		for _, d := range []float64{-2, -1, 0, 1, 2} {
			in = append(in, p+d, -(p + d), math.Nextafter(p, 0), math.Nextafter(p, math.Inf(1)))
		}
	}
	for range 10000 {
		in = append(in, float64(r.Int64N(1<<53)), -float64(r.Int64N(1e6)), math.Trunc(r.NormFloat64()*1e18))
	}
	in = append(in, math.Copysign(0, -1), 0, 1e21, -1e21, 1e20)
	for _, f := range in {
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendJSONFloat(nil, f)
		if err != nil || string(got) != string(want) {
			t.Fatalf("appendJSONFloat(%v) = %q, %v; json.Marshal: %q", f, got, err, want)
		}
	}
}

// TestTopIndexesOrder checks the selection of the top-K entries against a
// full stable sort (weight descending, then name), with many equal weights
// and names, for k below, at and above the insertion limit.
func TestTopIndexesOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	names := []string{"a", "b", "c", "d", "e", "f"}
	for trial := range 2000 {
		var a affinity
		for range r.IntN(70) {
			a.Entries = append(a.Entries, affEntry{W: float64(r.IntN(8)) / 4, Name: names[r.IntN(len(names))]})
		}
		ref := make([]int, len(a.Entries))
		for i := range ref {
			ref[i] = i
		}
		sort.SliceStable(ref, func(i, j int) bool {
			x, y := a.Entries[ref[i]], a.Entries[ref[j]]
			if x.W != y.W {
				return x.W > y.W
			}
			return x.Name < y.Name
		})
		for _, k := range []int{1, 2, 5, maxInsertionTopK, maxInsertionTopK + 1, 100} {
			got := a.topIndexes([]int32{-1}, k)
			if got[0] != -1 {
				t.Fatalf("trial %d k %d: dst's first element overwritten", trial, k)
			}
			got = got[1:]
			if want := min(k, len(ref)); len(got) != want {
				t.Fatalf("trial %d k %d: %d indexes, want %d", trial, k, len(got), want)
			}
			for i, x := range got {
				// Entries equal in weight and name are interchangeable.
				g, w := a.Entries[x], a.Entries[ref[i]]
				if g.W != w.W || g.Name != w.Name {
					t.Fatalf("trial %d k %d: position %d is %+v, want %+v", trial, k, i, g, w)
				}
			}
			seen := map[int32]bool{}
			for _, x := range got {
				if seen[x] {
					t.Fatalf("trial %d k %d: index %d twice", trial, k, x)
				}
				seen[x] = true
			}
		}
	}
}
