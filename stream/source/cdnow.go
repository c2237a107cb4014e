package source

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/streamprofile/streamprofile/stream"
)

// CDNOW constants: every CDNOW row becomes a purchase of this pseudo-item.
const (
	CDNOWItemID   = "cdnow"
	CDNOWCategory = "music.cd"
)

// cdnowHeader is the header line of the master file, split into fields.
var cdnowHeader = [...]string{"customer_id", "date", "number_of_cds", "dollar_value"}

// cdnowReader maps CDNOW rows to purchase events. The layout is chosen per
// line by its field count: 4 is the master layout, 5 the sample layout.
type cdnowReader struct {
	lines   *lineReader
	name    string
	dec     *stream.Decoder
	started bool // a non-blank line has been seen
}

func (r *cdnowReader) Next() (Record, error) {
	for {
		line, n, err := r.lines.next()
		if err != nil {
			return Record{}, err
		}
		f := strings.Fields(string(line))
		if len(f) == 0 {
			continue
		}
		first := !r.started
		r.started = true
		if first && isCDNOWHeader(f) {
			continue
		}
		ev, err := r.event(f, n)
		if err != nil {
			return Record{}, &LineError{Line: n, Err: err}
		}
		return encodeAndDecode(r.dec, &ev, n)
	}
}

func isCDNOWHeader(f []string) bool {
	if len(f) != len(cdnowHeader) {
		return false
	}
	for i, h := range cdnowHeader {
		if !strings.EqualFold(f[i], h) {
			return false
		}
	}
	return true
}

func (r *cdnowReader) event(f []string, line int) (stream.Event, error) {
	var customer, date, cds, dollars string
	switch len(f) {
	case 4: // master: customer_id date cds dollars
		customer, date, cds, dollars = f[0], f[1], f[2], f[3]
	case 5: // sample: master_id sample_id date cds dollars
		if !allDigits(f[1]) {
			return stream.Event{}, fmt.Errorf("sample customer id %q is not a number", truncate(f[1]))
		}
		customer, date, cds, dollars = f[0], f[2], f[3], f[4]
	default:
		return stream.Event{}, fmt.Errorf("%d fields, want 4 (master layout) or 5 (sample layout)", len(f))
	}
	if !allDigits(customer) {
		return stream.Event{}, fmt.Errorf("customer id %q is not a number", truncate(customer))
	}
	if len(date) != 8 || !allDigits(date) {
		return stream.Event{}, fmt.Errorf("date %q: want YYYYMMDD", truncate(date))
	}
	ts, err := time.Parse("20060102", date)
	if err != nil {
		return stream.Event{}, fmt.Errorf("date %q: want YYYYMMDD", date)
	}
	n, err := strconv.Atoi(cds)
	if err != nil || n < 0 || !allDigits(cds) {
		return stream.Event{}, fmt.Errorf("number of CDs %q is not a non-negative integer", truncate(cds))
	}
	total, err := parseMicros(dollars)
	if err != nil {
		return stream.Event{}, fmt.Errorf("dollar value: %w", err)
	}
	var unit int64 // micros per CD
	qty := n
	if n == 0 {
		// Never occurs in the bundled files; a row without CDs is kept as
		// one unit at price 0 rather than dropped.
		qty = 1
	} else {
		unit = roundDiv(total, int64(n))
	}
	price := microsToFloat(unit)
	return stream.Event{
		Schema:   stream.SchemaVersion,
		EventID:  eventID(r.name, line),
		Type:     stream.TypePurchase,
		UserID:   customer,
		TS:       ts,
		ItemID:   CDNOWItemID,
		Category: CDNOWCategory,
		Price:    &price,
		Quantity: qty,
		Currency: "USD",
	}, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
