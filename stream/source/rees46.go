package source

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/streamprofile/streamprofile/stream"
)

// REES46TimeLayout is the time layout of the REES46 event_time column.
const REES46TimeLayout = "2006-01-02 15:04:05 UTC"

// The REES46 columns a reader needs, in the order of the published files.
// category_id is not among them: the event's category is category_code.
var rees46Columns = [...]string{
	"event_time", "event_type", "product_id", "category_code",
	"brand", "price", "user_id", "user_session",
}

// Indexes into rees46Columns.
const (
	colTime = iota
	colType
	colProduct
	colCategory
	colBrand
	colPrice
	colUser
	colSession
)

// rees46Reader maps REES46 CSV rows to events. Columns are found by header
// name, so their order does not matter and extra columns are ignored.
type rees46Reader struct {
	csv  *csv.Reader
	name string
	dec  *stream.Decoder
	idx  [len(rees46Columns)]int // column index of each rees46Columns entry
	ncol int                     // number of header columns
	init bool
	err  error // sticky
}

func newREES46Reader(r io.Reader, name string, dec *stream.Decoder) *rees46Reader {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // checked here, to report the line
	cr.ReuseRecord = true
	return &rees46Reader{csv: cr, name: name, dec: dec}
}

func (r *rees46Reader) Next() (Record, error) {
	if r.err != nil {
		return Record{}, r.err
	}
	if !r.init {
		if err := r.readHeader(); err != nil {
			r.err = err
			return Record{}, err
		}
		r.init = true
	}
	rec, err := r.csv.Read()
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return Record{}, &LineError{Line: pe.StartLine, Err: pe.Err}
		}
		if err != io.EOF {
			err = fmt.Errorf("source: read %s: %w", r.name, err)
		}
		r.err = err
		return Record{}, err
	}
	line, _ := r.csv.FieldPos(0)
	if len(rec) != r.ncol {
		return Record{}, &LineError{Line: line, Err: fmt.Errorf("%d fields, header has %d", len(rec), r.ncol)}
	}
	ev, err := r.event(rec, line)
	if err != nil {
		return Record{}, &LineError{Line: line, Err: err}
	}
	return encodeAndDecode(r.dec, &ev, line)
}

func (r *rees46Reader) readHeader() error {
	hdr, err := r.csv.Read()
	if err == io.EOF {
		return fmt.Errorf("%w: %s is empty", ErrBadHeader, r.name)
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadHeader, r.name, err)
	}
	r.ncol = len(hdr)
	for i := range r.idx {
		r.idx[i] = -1
	}
	for i, h := range hdr {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff")
		}
		for c, want := range rees46Columns {
			if strings.TrimSpace(h) == want && r.idx[c] < 0 {
				r.idx[c] = i
			}
		}
	}
	for c, i := range r.idx {
		if i < 0 {
			return fmt.Errorf("%w: %s has no %q column", ErrBadHeader, r.name, rees46Columns[c])
		}
	}
	return nil
}

func (r *rees46Reader) event(rec []string, line int) (stream.Event, error) {
	col := func(c int) string { return rec[r.idx[c]] }
	ts, err := time.Parse(REES46TimeLayout, col(colTime))
	if err != nil {
		return stream.Event{}, fmt.Errorf("event_time %q: want layout %q", truncate(col(colTime)), REES46TimeLayout)
	}
	typ := stream.EventType(col(colType))
	switch typ {
	case stream.TypeView, stream.TypeCart, stream.TypeRemoveFromCart, stream.TypePurchase:
	default:
		return stream.Event{}, fmt.Errorf("event_type %q is not view, cart, remove_from_cart or purchase", truncate(string(typ)))
	}
	ev := stream.Event{
		Schema:    stream.SchemaVersion,
		EventID:   eventID(r.name, line),
		Type:      typ,
		UserID:    col(colUser),
		TS:        ts,
		SessionID: col(colSession),
		ItemID:    col(colProduct),
		Category:  col(colCategory),
		Brand:     col(colBrand),
		Quantity:  1,
		Currency:  "USD",
	}
	if p := col(colPrice); p != "" {
		m, err := parseMicros(p)
		if err != nil {
			return stream.Event{}, fmt.Errorf("price: %w", err)
		}
		f := microsToFloat(m)
		ev.Price = &f
	}
	return ev, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
