package segment_test

import (
	"errors"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/sink/segment"
)

// in is a map-backed segment.Input.
type in struct {
	vals    map[string]float64
	tops    map[string][]string
	deciles map[string]int
}

func (x in) Value(name string) (float64, bool) { v, ok := x.vals[name]; return v, ok }
func (x in) Top(dim string) []string           { return x.tops[dim] }
func (x in) Decile(score string) (int, bool)   { d, ok := x.deciles[score]; return d, ok }

// with returns a copy of x with the values set.
func (x in) with(kv ...any) in {
	y := in{vals: map[string]float64{}, tops: map[string][]string{}, deciles: map[string]int{}}
	for k, v := range x.vals {
		y.vals[k] = v
	}
	for k, v := range x.tops {
		y.tops[k] = v
	}
	for k, v := range x.deciles {
		y.deciles[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		k := kv[i].(string)
		switch v := kv[i+1].(type) {
		case float64:
			y.vals[k] = v
		case int:
			y.vals[k] = float64(v)
		case []string:
			y.tops[k] = v
		case decile:
			y.deciles[k] = int(v)
		default:
			panic("with: bad value type")
		}
	}
	return y
}

// decile marks a value passed to with as a decile.
type decile int

var t0 = time.Date(2019, 10, 1, 0, 0, 0, 0, time.UTC)

func mustParse(t testing.TB, yaml string) *segment.Catalogue {
	t.Helper()
	c, err := segment.Parse("test.yaml", []byte(yaml), segment.Config{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func mustRule(t testing.TB, src string) *segment.Rule {
	t.Helper()
	r, err := segment.ParseRule(src, segment.Names{})
	if err != nil {
		t.Fatalf("ParseRule(%q): %v", src, err)
	}
	return r
}

// asError returns the first *segment.Error in err.
func asError(t testing.TB, err error) *segment.Error {
	t.Helper()
	var e *segment.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *segment.Error", err, err)
	}
	return e
}

func kinds(changes []segment.Change) []string {
	var out []string
	for _, c := range changes {
		out = append(out, c.Kind.String()+" "+c.Segment)
	}
	return out
}

func nanValue() float64 {
	zero := 0.0
	return zero / zero
}
