package source_test

import (
	"bytes"
	"errors"
	"io"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/streamprofile/streamprofile/data"
	"github.com/streamprofile/streamprofile/stream"
	"github.com/streamprofile/streamprofile/stream/source"
)

// seedLines adds the first n lines of an embedded dataset as one seed, and
// each of a few lines on its own.
func seedLines(f *testing.F, name string, n int, extra ...string) {
	raw := rawLines(f, name)
	f.Add([]byte(strings.Join(raw[1:n+1], "\n") + "\n"))
	for _, l := range raw[1:6] {
		f.Add([]byte(l))
	}
	for _, e := range extra {
		f.Add([]byte(e))
	}
}

// fuzzRead drains a reader over in and checks the properties every reader
// must have, calling check on each good record with the input's lines.
func fuzzRead(t *testing.T, format source.Format, in []byte, check func(t *testing.T, rec source.Record, lines []string)) {
	r, err := source.NewReader(format, "fuzz.csv.gz", bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(in), "\n")
	dec := stream.NewDecoder(stream.Limits{}, nil)
	last := 0
	for calls := 0; ; calls++ {
		if calls > len(in)+2 { // at most one result per line, plus the end
			t.Fatalf("reader did not end after %d calls", calls)
		}
		rec, err := r.Next()
		if err == io.EOF {
			if _, err := r.Next(); err != io.EOF {
				t.Fatalf("Next after io.EOF = %v", err)
			}
			return
		}
		var le *source.LineError
		if errors.As(err, &le) {
			if le.Line < 1 || le.Err == nil || le.Error() == "" {
				t.Fatalf("malformed LineError %#v", le)
			}
			continue
		}
		if err != nil { // fatal: must be sticky
			if _, again := r.Next(); again == nil || again.Error() != err.Error() {
				t.Fatalf("fatal error %v not sticky: then %v", err, again)
			}
			return
		}
		if rec.Line <= last {
			t.Fatalf("line %d after line %d", rec.Line, last)
		}
		last = rec.Line
		if want := "fuzz.csv:L" + strconv.Itoa(rec.Line); rec.Event.EventID != want {
			t.Fatalf("event id %q, want %q", rec.Event.EventID, want)
		}
		got, err := dec.Decode(rec.Value)
		if err != nil || !reflect.DeepEqual(got, rec.Event) {
			t.Fatalf("Decode(%s) = %+v, %v; Record.Event %+v", rec.Value, got, err, rec.Event)
		}
		if rec.Event.Currency != "USD" {
			t.Fatalf("currency %q", rec.Event.Currency)
		}
		check(t, rec, lines)
	}
}

func FuzzRees46(f *testing.F) {
	seedLines(f, data.REES46Sample, 30,
		rees46Header+"2019-10-01 00:00:01 UTC,view,1,2,c,b,1.00,u\n2019-10-01 00:00:01 UTC,view,1,2,c,b,-1,u,s\n",
		rees46Header+"\"2019-10-01 00:00:01 UTC\",view,\"a\nb\",2,c,b,1.00,u,s\n2019-10-01 00:00:01 UTC,cart,1,2,c,b\"x,1.00,u,s\n",
		"user_id,user_session,price,brand,category_code,product_id,event_type,event_time\r\n7,,0.0000005,b,c,p,purchase,2019-10-01 00:00:01 UTC\r\n",
	)
	f.Fuzz(func(t *testing.T, in []byte) {
		fuzzRead(t, source.REES46, in, func(t *testing.T, rec source.Record, _ []string) {
			ev := rec.Event
			switch ev.Type {
			case stream.TypeView, stream.TypeCart, stream.TypeRemoveFromCart, stream.TypePurchase:
			default:
				t.Fatalf("type %q", ev.Type)
			}
			if ev.Quantity != 1 || ev.UserID == "" || ev.ItemID == "" {
				t.Fatalf("bad mapping %+v", ev)
			}
		})
	})
}

func FuzzCDNOW(f *testing.F) {
	seedLines(f, data.CDNOWMaster, 30, " 00001 19970101 32 0.01\n 00001 19970101 0 5\n\n 00002 19970101 1 -1\n")
	seedLines(f, data.CDNOWSample, 30, "00004 0001 19970101 2 29.33 extra\n00004 0001 19971301 2 29.33")
	f.Fuzz(func(t *testing.T, in []byte) {
		fuzzRead(t, source.CDNOW, in, func(t *testing.T, rec source.Record, lines []string) {
			ev := rec.Event
			if ev.Type != stream.TypePurchase || ev.ItemID != source.CDNOWItemID || ev.Category != source.CDNOWCategory {
				t.Fatalf("bad mapping %+v", ev)
			}
			if !ev.TS.Equal(ev.TS.Truncate(86400e9)) {
				t.Fatalf("ts %v is not midnight UTC", ev.TS)
			}
			// The amount is the row's dollar value to within qty/2 micros
			// (exact rational arithmetic on the raw text).
			fields := strings.Fields(lines[rec.Line-1])
			cds, _ := strconv.Atoi(fields[len(fields)-2])
			if cds == 0 {
				if ev.Quantity != 1 || ev.PriceMicros != 0 {
					t.Fatalf("zero CDs mapped to %+v", ev)
				}
				return
			}
			dollars, ok := new(big.Rat).SetString(fields[len(fields)-1])
			if !ok || cds != ev.Quantity {
				t.Fatalf("line %q accepted as %+v", lines[rec.Line-1], ev)
			}
			diff := new(big.Rat).Sub(big.NewRat(ev.AmountMicros(), 1), dollars.Mul(dollars, big.NewRat(1e6, 1)))
			if diff.Abs(diff).Cmp(big.NewRat(int64(cds), 2)) > 0 {
				t.Fatalf("line %q: amount %d micros off by %s", lines[rec.Line-1], ev.AmountMicros(), diff.FloatString(3))
			}
		})
	})
}

func FuzzJSONL(f *testing.F) {
	seedLines(f, data.CDNOWSample, 1) // not JSON: every line is a LineError
	f.Add([]byte(`{"schema":1,"event_id":"e","type":"view","user_id":"u","ts":"2019-10-01T00:00:00Z","item_id":"i"}` + "\r\n\n{}"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := source.NewReader(source.JSONL, "", bytes.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(in), "\n")
		for calls := 0; ; calls++ {
			if calls > len(lines) {
				t.Fatalf("reader did not end after %d calls", calls)
			}
			rec, err := r.Next()
			if err == io.EOF {
				return
			}
			var le *source.LineError
			if err != nil && !errors.As(err, &le) {
				t.Fatalf("jsonl reader over memory failed: %v", err)
			}
			// The value is the line unchanged, good or bad.
			if want := strings.TrimSuffix(lines[rec.Line-1], "\r"); string(rec.Value) != want {
				t.Fatalf("line %d: value %q, want %q", rec.Line, rec.Value, want)
			}
		}
	})
}
