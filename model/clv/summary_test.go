package clv_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/model/clv"
)

func day(y int, m time.Month, d, h int) time.Time { return time.Date(y, m, d, h, 0, 0, 0, time.UTC) }

func TestSummarizeFaderHardieConventions(t *testing.T) {
	est := time.FixedZone("EST", -5*3600)
	txns := []clv.Txn{
		// a: three purchase days, two of them with several purchases.
		{Customer: "a", Time: day(1997, 1, 1, 9), Amount: 10},
		{Customer: "a", Time: day(1997, 1, 1, 17), Amount: 5},
		{Customer: "a", Time: day(1997, 1, 8, 0), Amount: 20},
		{Customer: "a", Time: day(1997, 1, 8, 13), Amount: 4},
		{Customer: "a", Time: day(1997, 1, 22, 0), Amount: 30},
		{Customer: "a", Time: day(1997, 2, 1, 0), Amount: 100}, // after the cutoff day
		// b: one purchase late on the cutoff day itself.
		{Customer: "b", Time: day(1997, 1, 31, 23), Amount: 7},
		// c: only after the cutoff.
		{Customer: "c", Time: day(1997, 2, 2, 0), Amount: 1},
		// d: listed out of order.
		{Customer: "d", Time: day(1997, 1, 20, 0), Amount: 8},
		{Customer: "d", Time: day(1997, 1, 10, 0), Amount: 2},
		// e: 23:30 EST on the 5th is 04:30 UTC on the 6th: one UTC day.
		{Customer: "e", Time: time.Date(1997, 1, 5, 23, 30, 0, 0, est), Amount: 3},
		{Customer: "e", Time: day(1997, 1, 6, 1), Amount: 3},
		// f: a zero-value repeat purchase.
		{Customer: "f", Time: day(1997, 1, 1, 0), Amount: 12},
		{Customer: "f", Time: day(1997, 1, 15, 0), Amount: 0},
	}
	cutoff := day(1997, 1, 31, 0)
	const w = 7.0
	for _, tc := range []struct {
		unit time.Duration
		per  float64 // days per unit
	}{{7 * 24 * time.Hour, w}, {24 * time.Hour, 1}, {time.Hour, 1.0 / 24}} {
		got, err := clv.Summarize(txns, cutoff, tc.unit)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]clv.Customer{
			"a": {Frequency: 2, Recency: 21 / tc.per, T: 30 / tc.per, MonetaryMean: (24 + 30) / 2.0},
			"b": {Frequency: 0, Recency: 0, T: 0},
			"d": {Frequency: 1, Recency: 10 / tc.per, T: 21 / tc.per, MonetaryMean: 8},
			"e": {Frequency: 0, Recency: 0, T: 25 / tc.per},
			"f": {Frequency: 1, Recency: 14 / tc.per, T: 30 / tc.per, MonetaryMean: 0},
		}
		if len(got) != len(want) {
			t.Errorf("unit %v: %d customers %v, want %d", tc.unit, len(got), got, len(want))
		}
		for id, w := range want {
			g, ok := got[id]
			if !ok || !customersClose(g, w) {
				t.Errorf("unit %v: customer %s = %+v (present %v), want %+v", tc.unit, id, g, ok, w)
			}
		}
	}
}

func customersClose(a, b clv.Customer) bool {
	close := func(x, y float64) bool { return math.Abs(x-y) <= 1e-12*math.Max(1, math.Abs(y)) }
	return a.Frequency == b.Frequency && close(a.Recency, b.Recency) && close(a.T, b.T) && close(a.MonetaryMean, b.MonetaryMean)
}

func TestSummarizeInvalidInput(t *testing.T) {
	now := day(2020, 1, 1, 0)
	for _, tc := range []struct {
		name  string
		txns  []clv.Txn
		unit  time.Duration
		index int
	}{
		{"zero unit", nil, 0, -1},
		{"negative unit", nil, -time.Hour, -1},
		{"NaN amount", []clv.Txn{{Customer: "a", Time: now, Amount: 1}, {Customer: "a", Time: now, Amount: math.NaN()}}, time.Hour, 1},
		{"negative amount", []clv.Txn{{Customer: "a", Time: now, Amount: -5}}, time.Hour, 0},
		{"infinite amount", []clv.Txn{{Customer: "a", Time: now, Amount: math.Inf(1)}}, time.Hour, 0},
		{"overflowing sum", []clv.Txn{{Customer: "a", Time: now, Amount: math.MaxFloat64}, {Customer: "b", Time: now, Amount: math.MaxFloat64}}, time.Hour, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := clv.Summarize(tc.txns, now, tc.unit)
			var ie *clv.InputError
			if !errors.Is(err, clv.ErrInvalidInput) || !errors.As(err, &ie) || ie.Index != tc.index {
				t.Fatalf("err = %v, want an InputError at index %d", err, tc.index)
			}
		})
	}
	if got, err := clv.Summarize(nil, now, time.Hour); err != nil || len(got) != 0 {
		t.Errorf("Summarize(nil) = %v, %v; want an empty map", got, err)
	}
}

// randomLog draws a transaction log over a few customers and a few months,
// with many same-day repeats.
func randomLog(rng *rand.Rand, n int) []clv.Txn {
	ids := []string{"u1", "u2", "u3", "u4", "u5"}
	start := day(2024, 1, 1, 0)
	txns := make([]clv.Txn, n)
	for i := range txns {
		txns[i] = clv.Txn{
			Customer: ids[rng.IntN(len(ids))],
			Time:     start.Add(time.Duration(rng.Int64N(int64(120 * 24 * time.Hour)))),
			Amount:   math.Round(rng.Float64()*10000) / 100,
		}
	}
	return txns
}

// The incremental Summary, fed each customer's purchases in time order, is
// exactly Summarize; and shuffling the log does not change Summarize.
func TestSummaryAgreesWithSummarize(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 2))
	for range 50 {
		txns := randomLog(rng, 1+rng.IntN(200))
		cutoff := day(2024, 1, 1, 0).AddDate(0, 0, rng.IntN(130))
		unit := []time.Duration{time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}[rng.IntN(3)]
		want, err := clv.Summarize(txns, cutoff, unit)
		if err != nil {
			t.Fatal(err)
		}
		sorted := append([]clv.Txn(nil), txns...)
		sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Time.Before(sorted[j].Time) })
		sums := map[string]*clv.Summary{}
		for _, tx := range sorted {
			if tx.Time.After(endOfDay(cutoff)) {
				continue
			}
			if sums[tx.Customer] == nil {
				sums[tx.Customer] = &clv.Summary{}
			}
			if err := sums[tx.Customer].Add(tx.Time, tx.Amount); err != nil {
				t.Fatal(err)
			}
		}
		if len(sums) != len(want) {
			t.Fatalf("incremental summaries for %d customers, Summarize %d", len(sums), len(want))
		}
		for id, s := range sums {
			c, err := s.Customer(cutoff, unit)
			if err != nil || !customersClose(c, want[id]) {
				t.Fatalf("customer %s: incremental %+v (%v), Summarize %+v", id, c, err, want[id])
			}
		}
		rng.Shuffle(len(txns), func(i, j int) { txns[i], txns[j] = txns[j], txns[i] })
		shuffled, err := clv.Summarize(txns, cutoff, unit)
		if err != nil {
			t.Fatal(err)
		}
		for id, c := range want {
			if !customersClose(shuffled[id], c) {
				t.Fatalf("customer %s: shuffled log gives %+v, want %+v", id, shuffled[id], c)
			}
		}
	}
}

func endOfDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC).Add(-time.Nanosecond)
}

func TestSummaryOutOfOrder(t *testing.T) {
	unit := 24 * time.Hour
	asOf := day(2024, 3, 1, 0)
	for _, tc := range []struct {
		name string
		adds []clv.Txn // Customer unused
		want clv.Customer
	}{
		{
			name: "earlier day arrives last",
			adds: []clv.Txn{{Time: day(2024, 2, 10, 0), Amount: 5}, {Time: day(2024, 2, 1, 0), Amount: 3}},
			want: clv.Customer{Frequency: 1, Recency: 9, T: 29, MonetaryMean: 5},
		},
		{
			name: "late purchase on the first day merges",
			adds: []clv.Txn{{Time: day(2024, 2, 1, 9), Amount: 3}, {Time: day(2024, 2, 10, 0), Amount: 5}, {Time: day(2024, 2, 1, 20), Amount: 4}},
			want: clv.Customer{Frequency: 1, Recency: 9, T: 29, MonetaryMean: 5},
		},
		{
			name: "late purchase on the last day merges",
			adds: []clv.Txn{{Time: day(2024, 2, 1, 0), Amount: 3}, {Time: day(2024, 2, 10, 5), Amount: 5}, {Time: day(2024, 2, 10, 1), Amount: 1}},
			want: clv.Customer{Frequency: 1, Recency: 9, T: 29, MonetaryMean: 6},
		},
		{
			name: "late purchase between first and last counts as a new day",
			adds: []clv.Txn{{Time: day(2024, 2, 1, 0), Amount: 3}, {Time: day(2024, 2, 10, 0), Amount: 5}, {Time: day(2024, 2, 5, 0), Amount: 7}},
			want: clv.Customer{Frequency: 2, Recency: 9, T: 29, MonetaryMean: 6},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s clv.Summary
			for _, a := range tc.adds {
				if err := s.Add(a.Time, a.Amount); err != nil {
					t.Fatal(err)
				}
			}
			if got, err := s.Customer(asOf, unit); err != nil || !customersClose(got, tc.want) {
				t.Errorf("Customer = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestSummaryEdgeCases(t *testing.T) {
	var s clv.Summary
	if _, err := s.Customer(day(2024, 1, 1, 0), time.Hour); !errors.Is(err, clv.ErrNoPurchases) {
		t.Errorf("empty summary: err = %v, want ErrNoPurchases", err)
	}
	for _, bad := range []float64{math.NaN(), -1, math.Inf(1)} {
		if err := s.Add(day(2024, 1, 1, 0), bad); !errors.Is(err, clv.ErrInvalidInput) || s != (clv.Summary{}) {
			t.Errorf("Add(%v): err = %v, summary %+v; want ErrInvalidInput and no change", bad, err, s)
		}
	}
	if err := s.Add(day(2024, 1, 1, 0), math.MaxFloat64); err != nil {
		t.Fatal(err)
	}
	before := s
	if err := s.Add(day(2024, 1, 2, 0), math.MaxFloat64); !errors.Is(err, clv.ErrInvalidInput) || s != before {
		t.Errorf("overflowing Add: err = %v, summary %+v; want ErrInvalidInput and no change", err, s)
	}
	s = clv.Summary{}
	_ = s.Add(day(2024, 1, 1, 0), 1)
	_ = s.Add(day(2024, 1, 11, 0), 1)
	if _, err := s.Customer(day(2024, 2, 1, 0), 0); !errors.Is(err, clv.ErrInvalidInput) {
		t.Errorf("unit 0: err = %v, want ErrInvalidInput", err)
	}
	// asOf before the last purchase day: T is raised to the recency.
	if c, err := s.Customer(day(2024, 1, 5, 0), 24*time.Hour); err != nil || c.T != 10 || c.Recency != 10 {
		t.Errorf("asOf before the last purchase: %+v, %v; want T = Recency = 10", c, err)
	}
	// Purchases before 1970 use floor division for the day number.
	s = clv.Summary{}
	_ = s.Add(time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC), 1)
	_ = s.Add(time.Date(1970, 1, 1, 1, 0, 0, 0, time.UTC), 1)
	if s.Days != 2 || s.FirstDay != -1 || s.LastDay != 0 {
		t.Errorf("summary across the epoch = %+v, want days -1 and 0", s)
	}
}

func TestSummaryBinaryRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for range 100 {
		var s clv.Summary
		for _, tx := range randomLog(rng, rng.IntN(20)) {
			if err := s.Add(tx.Time, tx.Amount); err != nil {
				t.Fatal(err)
			}
		}
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got clv.Summary
		if err := got.UnmarshalBinary(b); err != nil || got != s {
			t.Fatalf("round trip of %+v = %+v, %v", s, got, err)
		}
	}
	good, _ := (clv.Summary{FirstDay: 5, LastDay: 9, Days: 3, Total: 10, FirstDayTotal: 2}).MarshalBinary()
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"short", good[:40]},
		{"long", append(append([]byte(nil), good...), 0)},
		{"unknown version", mutate(func(b []byte) []byte { b[0] = 2; return b })},
		{"last before first", mutate(func(b []byte) []byte { binary.BigEndian.PutUint64(b[9:], 1); return b })},
		{"negative days", mutate(func(b []byte) []byte { binary.BigEndian.PutUint64(b[17:], math.MaxUint64); return b })},
		{"NaN total", mutate(func(b []byte) []byte { binary.BigEndian.PutUint64(b[25:], math.Float64bits(math.NaN())); return b })},
		{"one day but a span", mutate(func(b []byte) []byte { binary.BigEndian.PutUint64(b[17:], 1); return b })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := clv.Summary{Days: 1, Total: 4, FirstDayTotal: 4}
			before := s
			if err := s.UnmarshalBinary(tc.b); !errors.Is(err, clv.ErrInvalidInput) || s != before {
				t.Errorf("err = %v, summary %+v; want ErrInvalidInput and no change", err, s)
			}
		})
	}
}

// FuzzSummarize decodes arbitrary bytes into a transaction log (12 bytes per
// transaction: customer, time offset in minutes, raw float64 amount bits, so
// NaN, Inf and negative amounts occur) and checks that Summarize never panics,
// rejects exactly the invalid amounts, and otherwise yields valid summaries
// that agree with the incremental Summary.
func FuzzSummarize(f *testing.F) {
	seed := func(rows ...[3]uint64) []byte {
		var b []byte
		for _, r := range rows {
			b = append(b, byte(r[0]))
			b = binary.BigEndian.AppendUint32(b, uint32(r[1]))
			n := len(b)
			b = binary.BigEndian.AppendUint64(b, r[2])[:n+7] // the amount's low byte is implied zero
		}
		return b
	}
	f.Add(seed([3]uint64{0, 0, math.Float64bits(10)}, [3]uint64{0, 60, math.Float64bits(5)}, [3]uint64{1, 3000, math.Float64bits(7)}), int64(10), uint8(1))
	f.Add(seed([3]uint64{2, 5, math.Float64bits(math.NaN())}), int64(0), uint8(0))
	f.Add([]byte{}, int64(-3), uint8(2))
	f.Fuzz(func(t *testing.T, raw []byte, cutoffDays int64, unitSel uint8) {
		base := day(2000, 1, 1, 0)
		var txns []clv.Txn
		invalid := false
		for len(raw) >= 12 {
			amount := math.Float64frombits(binary.BigEndian.Uint64(append(raw[5:12:12], 0)))
			txns = append(txns, clv.Txn{
				Customer: string(rune('a' + raw[0]%4)),
				Time:     base.Add(time.Duration(int32(binary.BigEndian.Uint32(raw[1:5]))) * time.Minute),
				Amount:   amount,
			})
			if !(amount >= 0) || math.IsInf(amount, 1) {
				invalid = true
			}
			raw = raw[12:]
		}
		cutoff := base.AddDate(0, 0, int(cutoffDays%100000))
		unit := []time.Duration{time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 0}[unitSel%4]
		got, err := clv.Summarize(txns, cutoff, unit)
		if err != nil {
			if !errors.Is(err, clv.ErrInvalidInput) {
				t.Fatalf("err = %v, want ErrInvalidInput", err)
			}
			if !invalid && unit > 0 && !sumOverflows(txns) {
				t.Fatalf("valid log rejected: %v", err)
			}
			return
		}
		if invalid || unit <= 0 {
			t.Fatalf("invalid input accepted (unit %v)", unit)
		}
		sorted := append([]clv.Txn(nil), txns...)
		sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Time.Before(sorted[j].Time) })
		sums := map[string]*clv.Summary{}
		for _, tx := range sorted {
			if tx.Time.After(endOfDay(cutoff)) {
				continue
			}
			if sums[tx.Customer] == nil {
				sums[tx.Customer] = &clv.Summary{}
			}
			if err := sums[tx.Customer].Add(tx.Time, tx.Amount); err != nil {
				t.Fatal(err)
			}
		}
		if len(got) != len(sums) {
			t.Fatalf("%d customers, incremental %d", len(got), len(sums))
		}
		for id, c := range got {
			if err := c.Validate(); err != nil {
				t.Fatalf("customer %s: %+v invalid: %v", id, c, err)
			}
			inc, err := sums[id].Customer(cutoff, unit)
			if err != nil || !customersClose(c, inc) {
				t.Fatalf("customer %s: %+v, incremental %+v (%v)", id, c, inc, err)
			}
		}
	})
}

func sumOverflows(txns []clv.Txn) bool {
	s := 0.0
	for _, t := range txns {
		s += t.Amount
	}
	return math.IsInf(s, 1)
}

// FuzzSummaryUnmarshalBinary checks that decoding never panics and that an
// accepted encoding round-trips and yields a usable summary.
func FuzzSummaryUnmarshalBinary(f *testing.F) {
	good, _ := (clv.Summary{FirstDay: 5, LastDay: 9, Days: 3, Total: 10, FirstDayTotal: 2}).MarshalBinary()
	empty, _ := (clv.Summary{}).MarshalBinary()
	f.Add(good)
	f.Add(empty)
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		var s clv.Summary
		if err := s.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, clv.ErrInvalidInput) {
				t.Fatalf("err = %v, want ErrInvalidInput", err)
			}
			return
		}
		again, err := s.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding %+v = %x, %v; want %x", s, again, err, b)
		}
		c, err := s.Customer(time.Unix(0, 0).AddDate(0, 0, 20), 24*time.Hour)
		if s.Days == 0 {
			if !errors.Is(err, clv.ErrNoPurchases) {
				t.Fatalf("empty summary: err = %v", err)
			}
			return
		}
		if err != nil || c.Validate() != nil {
			t.Fatalf("summary %+v: customer %+v, %v, valid: %v", s, c, err, c.Validate())
		}
	})
}
