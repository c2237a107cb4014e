package main

import (
	"math"
	"testing"
)

// TestSpeedFlag: --speed takes max (any case, or empty) or a positive
// multiple of real time, with an optional x suffix; anything else is a
// clear error naming what was given.
func TestSpeedFlag(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    float64
		wantErr bool
	}{
		{in: "max", want: 0},
		{in: "MAX", want: 0},
		{in: " max ", want: 0},
		{in: "", want: 0},
		{in: "60", want: 60},
		{in: "60x", want: 60},
		{in: "0.5", want: 0.5},
		{in: "2.5X", want: 2.5},
		{in: "0", wantErr: true},
		{in: "-3", wantErr: true},
		{in: "ma", wantErr: true},
		{in: "x", wantErr: true},
		{in: "maxx", wantErr: true},
		{in: "NaN", wantErr: true},
		{in: "inf", wantErr: true},
		{in: "1e400", wantErr: true},
	} {
		var s speedFlag
		err := s.Set(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("Set(%q) accepted as %v", tc.in, s.v)
			}
			continue
		}
		if err != nil || s.v != tc.want || math.IsNaN(s.v) {
			t.Errorf("Set(%q) = %v, %v; want %v", tc.in, s.v, err, tc.want)
		}
	}
}
