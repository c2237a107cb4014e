package clv

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"time"
)

// Txn is one purchase in a transaction log.
type Txn struct {
	Customer string
	Time     time.Time
	Amount   float64 // value of the purchase; finite and ≥ 0
}

// Summary is the incremental, per-customer state behind a [Customer]
// summary: five numbers, cheap to keep per user in a streaming system and to
// store with [Summary.MarshalBinary]. The zero value is an empty summary.
//
// Purchases are bucketed by UTC calendar day and same-day purchases merge
// into one transaction, as in Fader & Hardie's CDNOW analyses. Purchases
// should be added in time order, as a keyed stream delivers them. Out of
// order purchases are handled exactly when they fall on the first or last
// purchase day or before the first day; one strictly between the first and
// last day cannot be told apart from a day already seen, and is counted as a
// new purchase day.
type Summary struct {
	FirstDay      int64   // UTC day number (days since 1970-01-01) of the first purchase
	LastDay       int64   // UTC day number of the last purchase
	Days          int64   // distinct purchase days; 0 for an empty summary
	Total         float64 // sum of all purchase amounts
	FirstDayTotal float64 // sum of the amounts on FirstDay
}

const secondsPerDay = 24 * 60 * 60

// The range of day numbers of time.Time values (whose Unix seconds fit an
// int64); differences of two stay far from int64 overflow.
const (
	maxDay = math.MaxInt64 / secondsPerDay
	minDay = -maxDay - 1
)

// dayNumber returns the UTC calendar day of t as days since 1970-01-01.
func dayNumber(t time.Time) int64 {
	s := t.Unix()
	d := s / secondsPerDay
	if s%secondsPerDay < 0 {
		d--
	}
	return d
}

// Add records a purchase of amount at t. It returns an error wrapping
// [ErrInvalidInput], and leaves s unchanged, if amount is NaN, infinite or
// negative or would make the total overflow.
func (s *Summary) Add(t time.Time, amount float64) error {
	if !finiteNonNeg(amount) {
		return inputErr(-1, "amount", "must be finite and ≥ 0")
	}
	if !finiteNonNeg(s.Total + amount) {
		return inputErr(-1, "amount", "total overflows")
	}
	s.addDay(dayNumber(t), amount)
	return nil
}

func (s *Summary) addDay(day int64, amount float64) {
	s.Total += amount
	switch {
	case s.Days == 0:
		s.FirstDay, s.LastDay, s.Days, s.FirstDayTotal = day, day, 1, amount
	case day == s.FirstDay:
		s.FirstDayTotal += amount
	case day == s.LastDay:
	case day > s.LastDay:
		s.LastDay = day
		s.Days++
	case day < s.FirstDay:
		s.FirstDay, s.FirstDayTotal = day, amount
		s.Days++
	default: // strictly between FirstDay and LastDay: assumed unseen
		s.Days++
	}
}

// Customer returns the customer summary as of the day of asOf, in time
// units of unit: Frequency = Days − 1, Recency = LastDay − FirstDay,
// T = day(asOf) − FirstDay and MonetaryMean = mean value of the repeat
// purchase days. T is raised to Recency if asOf is before the last purchase
// day. It returns [ErrNoPurchases] for an empty summary and an error wrapping
// [ErrInvalidInput] if unit is not positive.
func (s Summary) Customer(asOf time.Time, unit time.Duration) (Customer, error) {
	if unit <= 0 {
		return Customer{}, inputErr(-1, "unit", "must be > 0")
	}
	if err := s.validate(); err != nil {
		return Customer{}, err
	}
	if s.Days == 0 {
		return Customer{}, ErrNoPurchases
	}
	perDay := float64(24*time.Hour) / float64(unit)
	c := Customer{
		Frequency: float64(s.Days - 1),
		Recency:   float64(s.LastDay-s.FirstDay) * perDay,
		T:         float64(dayNumber(asOf)-s.FirstDay) * perDay,
	}
	if c.T < c.Recency {
		c.T = c.Recency
	}
	if s.Days > 1 {
		c.MonetaryMean = math.Max(0, (s.Total-s.FirstDayTotal)/float64(s.Days-1))
	}
	return c, nil
}

const summaryBinaryV1 = 1

// summaryBinaryLen is the length of the MarshalBinary encoding: a version
// byte and five 8-byte big-endian fields.
const summaryBinaryLen = 1 + 5*8

// MarshalBinary encodes s in 41 bytes.
func (s Summary) MarshalBinary() ([]byte, error) {
	b := make([]byte, summaryBinaryLen)
	b[0] = summaryBinaryV1
	binary.BigEndian.PutUint64(b[1:], uint64(s.FirstDay))
	binary.BigEndian.PutUint64(b[9:], uint64(s.LastDay))
	binary.BigEndian.PutUint64(b[17:], uint64(s.Days))
	binary.BigEndian.PutUint64(b[25:], math.Float64bits(s.Total))
	binary.BigEndian.PutUint64(b[33:], math.Float64bits(s.FirstDayTotal))
	return b, nil
}

// UnmarshalBinary decodes the encoding of [Summary.MarshalBinary]. It
// returns an error wrapping [ErrInvalidInput], and leaves s unchanged, for a
// wrong length or version or an inconsistent summary.
func (s *Summary) UnmarshalBinary(b []byte) error {
	if len(b) != summaryBinaryLen {
		return inputErr(-1, "Summary encoding", fmt.Sprintf("length %d, want %d", len(b), summaryBinaryLen))
	}
	if b[0] != summaryBinaryV1 {
		return inputErr(-1, "Summary encoding", fmt.Sprintf("unknown version %d", b[0]))
	}
	v := Summary{
		FirstDay:      int64(binary.BigEndian.Uint64(b[1:])),
		LastDay:       int64(binary.BigEndian.Uint64(b[9:])),
		Days:          int64(binary.BigEndian.Uint64(b[17:])),
		Total:         math.Float64frombits(binary.BigEndian.Uint64(b[25:])),
		FirstDayTotal: math.Float64frombits(binary.BigEndian.Uint64(b[33:])),
	}
	if err := v.validate(); err != nil {
		return err
	}
	*s = v
	return nil
}

func (s Summary) validate() error {
	if s == (Summary{}) {
		return nil
	}
	switch {
	case s.FirstDay < minDay || s.LastDay > maxDay:
		return inputErr(-1, "Summary.FirstDay", "day number out of range")
	case s.Days <= 0:
		return inputErr(-1, "Summary.Days", "must be > 0 in a non-empty summary")
	case s.LastDay < s.FirstDay:
		return inputErr(-1, "Summary.LastDay", "must not precede FirstDay")
	case s.Days == 1 && s.LastDay != s.FirstDay:
		return inputErr(-1, "Summary.Days", "one purchase day but LastDay ≠ FirstDay")
	case s.Days > 1 && s.LastDay == s.FirstDay:
		return inputErr(-1, "Summary.Days", "several purchase days but LastDay = FirstDay")
	case !finiteNonNeg(s.Total) || !finiteNonNeg(s.FirstDayTotal):
		return inputErr(-1, "Summary.Total", "must be finite and ≥ 0")
	}
	return nil
}

// Summarize builds the [Customer] summary of every customer with at least
// one purchase on or before the UTC day of cutoff, which is the last day of
// the calibration period (for CDNOW's 39 calibration weeks from 1997-01-01:
// 1997-09-30). Purchases after that day are ignored. Times are in units of
// unit; see [Summary.Customer] for the conventions. It returns an error
// wrapping [ErrInvalidInput] if unit is not positive or a transaction amount
// is NaN, infinite or negative.
func Summarize(txns []Txn, cutoff time.Time, unit time.Duration) (map[string]Customer, error) {
	if unit <= 0 {
		return nil, inputErr(-1, "unit", "must be > 0")
	}
	type dayAmount struct {
		day    int64
		amount float64
	}
	last := dayNumber(cutoff)
	byCustomer := make(map[string][]dayAmount)
	total := 0.0
	for i, t := range txns {
		if !finiteNonNeg(t.Amount) {
			return nil, inputErr(i, "Amount", "must be finite and ≥ 0")
		}
		if total += t.Amount; math.IsInf(total, 1) { // bounds every customer's total
			return nil, inputErr(i, "Amount", "sum of amounts overflows")
		}
		if d := dayNumber(t.Time); d <= last {
			byCustomer[t.Customer] = append(byCustomer[t.Customer], dayAmount{d, t.Amount})
		}
	}
	out := make(map[string]Customer, len(byCustomer))
	for id, ds := range byCustomer {
		// In day order every purchase is on the last day or after it, so
		// the summary is exact.
		sort.SliceStable(ds, func(i, j int) bool { return ds[i].day < ds[j].day })
		var s Summary
		for _, d := range ds {
			s.addDay(d.day, d.amount)
		}
		c, err := s.Customer(cutoff, unit)
		if err != nil {
			return nil, err
		}
		out[id] = c
	}
	return out, nil
}
