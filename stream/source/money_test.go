package source

import (
	"math/big"
	"strconv"
	"testing"
)

func TestParseMicros(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"0.00", 0, true}, {"12", 12_000_000, true}, {"35.79", 35_790_000, true},
		{".25", 250_000, true}, {"5.", 5_000_000, true}, {"+1.5", 1_500_000, true}, {"-1.5", -1_500_000, true},
		{"0.000001", 1, true}, {"0.0000005", 1, true}, {"0.0000004999", 0, true}, {"-0.0000005", -1, true},
		{"999999999999.999999", 999_999_999_999_999_999, true},
		{"", 0, false}, {".", 0, false}, {"-", 0, false}, {"1e3", 0, false}, {"0x10", 0, false},
		{"NaN", 0, false}, {"Inf", 0, false}, {"1_000", 0, false}, {" 1", 0, false}, {"1.2.3", 0, false},
		{"1000000000000", 0, false}, {"--1", 0, false}, {"1,5", 0, false},
	} {
		got, err := parseMicros(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseMicros(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestMicrosToFloatMatchesParseFloat: for every amount with at most 6
// decimals, the float built from micros is the one strconv would parse.
func TestMicrosToFloatMatchesParseFloat(t *testing.T) {
	for _, s := range []string{"0.1", "35.79", "543.10", "0.000001", "999999999.999999", "123456.789012", "0.3", "2.675"} {
		m, err := parseMicros(s)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := strconv.ParseFloat(s, 64)
		if got := microsToFloat(m); got != want {
			t.Errorf("%s: microsToFloat(%d) = %v, ParseFloat = %v", s, m, got, want)
		}
	}
}

// TestRoundDivProperty checks roundDiv against exact rational rounding.
func TestRoundDivProperty(t *testing.T) {
	for n := int64(-300); n <= 300; n++ {
		for d := int64(1); d <= 40; d++ {
			got := roundDiv(n, d)
			// |n/d - got| <= 1/2, with ties away from zero.
			diff := new(big.Rat).Sub(big.NewRat(n, d), big.NewRat(got, 1))
			half := big.NewRat(1, 2)
			if diff.Abs(diff).Cmp(half) > 0 {
				t.Fatalf("roundDiv(%d, %d) = %d is more than 1/2 off", n, d, got)
			}
			if 2*(n%d) == d || 2*(n%d) == -d { // a tie
				away := n/d + map[bool]int64{true: 1, false: -1}[n > 0]
				if got != away {
					t.Fatalf("roundDiv(%d, %d) = %d, ties go away from zero (%d)", n, d, got, away)
				}
			}
		}
	}
}
