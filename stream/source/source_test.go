package source_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/data"
	"github.com/streamprofile/streamprofile/stream"
	"github.com/streamprofile/streamprofile/stream/source"
)

// readAll drains r, failing the test on any error.
func readAll(t testing.TB, r source.Reader) []source.Record {
	t.Helper()
	var out []source.Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("after %d records: %v", len(out), err)
		}
		out = append(out, rec)
	}
}

// result is what one call to Next produced.
type result struct {
	rec source.Record
	err error
}

// readResults drains r, keeping LineErrors, until io.EOF or another error.
func readResults(r source.Reader, max int) (res []result, final error) {
	for range max {
		rec, err := r.Next()
		var le *source.LineError
		if err != nil && !errors.As(err, &le) {
			return res, err
		}
		res = append(res, result{rec, err})
	}
	return res, fmt.Errorf("reader did not end after %d calls", max)
}

// rawLines returns the plain-text lines of an embedded dataset, 1-based
// (index 0 is unused).
func rawLines(t testing.TB, name string) []string {
	t.Helper()
	rc, err := data.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	lines := []string{""}
	sc := bufio.NewScanner(rc)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// checkDecodes asserts that rec.Value decodes, with an independent decoder,
// to exactly rec.Event.
func checkDecodes(t testing.TB, dec *stream.Decoder, rec source.Record) {
	t.Helper()
	decodeAndCompare(t, dec, rec)
}

// checkDecodesSampled is checkDecodes for the bundled datasets: under the
// race detector only every 16th record is re-decoded (each was already
// decoded by the reader, which returns no Record for a value that fails).
func checkDecodesSampled(t testing.TB, dec *stream.Decoder, rec source.Record) {
	t.Helper()
	if raceEnabled && rec.Line%16 != 0 {
		return
	}
	decodeAndCompare(t, dec, rec)
}

func decodeAndCompare(t testing.TB, dec *stream.Decoder, rec source.Record) {
	t.Helper()
	got, err := dec.Decode(rec.Value)
	if err != nil {
		t.Fatalf("line %d: value %s does not decode: %v", rec.Line, rec.Value, err)
	}
	if !reflect.DeepEqual(got, rec.Event) {
		t.Fatalf("line %d: Decode(Value) = %+v, Record.Event = %+v", rec.Line, got, rec.Event)
	}
}

// TestBundledREES46 reads every row of the embedded REES46 sample and checks
// each event against a naive split of the raw line.
func TestBundledREES46(t *testing.T) {
	r, c, err := source.Open(source.REES46, source.EmbeddedPrefix+data.REES46Sample)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	recs := readAll(t, r)
	raw := rawLines(t, data.REES46Sample)
	if len(recs) != 17434 || len(recs) != len(raw)-2 {
		t.Fatalf("%d records from %d data lines, want 17,434", len(recs), len(raw)-2)
	}
	dec := stream.NewDecoder(stream.Limits{}, nil)
	for i, rec := range recs {
		if rec.Line != i+2 {
			t.Fatalf("record %d has line %d, want %d (header is line 1)", i, rec.Line, i+2)
		}
		checkDecodesSampled(t, dec, rec)
		f := strings.Split(raw[rec.Line], ",")
		ev := rec.Event
		price, _ := strconv.ParseFloat(f[6], 64)
		want := []struct{ field, got, want string }{
			{"event_id", ev.EventID, "rees46-2019-oct-head.csv:L" + strconv.Itoa(rec.Line)},
			{"ts", ev.TS.Format("2006-01-02 15:04:05") + " UTC", f[0]},
			{"type", string(ev.Type), f[1]},
			{"item_id", ev.ItemID, f[2]},
			{"category", ev.Category, f[4]},
			{"brand", ev.Brand, f[5]},
			{"price", strconv.FormatFloat(*ev.Price, 'g', -1, 64), strconv.FormatFloat(price, 'g', -1, 64)},
			{"price_micros", strconv.FormatInt(ev.PriceMicros, 10), strings.TrimLeft(strings.Replace(f[6], ".", "", 1)+"0000", "0")},
			{"user_id", ev.UserID, f[7]},
			{"session_id", ev.SessionID, f[8]},
			{"quantity", strconv.Itoa(ev.Quantity), "1"},
			{"currency", ev.Currency, "USD"},
			{"anonymous_id", ev.AnonymousID, ""},
		}
		for _, w := range want {
			if w.field == "price_micros" && ev.PriceMicros == 0 && f[6] == "0.00" {
				continue
			}
			if w.got != w.want {
				t.Fatalf("line %d (%s): %s = %q, want %q", rec.Line, raw[rec.Line], w.field, w.got, w.want)
			}
		}
		if strings.Contains(string(rec.Value), f[3]) {
			t.Fatalf("line %d: category_id %s leaked into the event %s", rec.Line, f[3], rec.Value)
		}
	}
}

// TestBundledCDNOW reads both CDNOW files and checks every purchase against
// the raw row, including the money rounding bound, and that both layouts map
// a transaction the same way: every sample transaction is also in the master
// log (the sample is a subset of it).
func TestBundledCDNOW(t *testing.T) {
	key := func(ev stream.Event) string {
		return fmt.Sprintf("%s %s %d %d", ev.UserID, ev.TS.Format(time.DateOnly), ev.Quantity, ev.PriceMicros)
	}
	master := map[string]int{} // filled by the first subtest
	for _, tc := range []struct {
		name   string
		rows   int
		header bool
	}{
		{data.CDNOWMaster, 69659, true},
		{data.CDNOWSample, 6919, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, c, err := source.Open(source.CDNOW, source.EmbeddedPrefix+tc.name)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			recs := readAll(t, r)
			raw := rawLines(t, tc.name)
			first := 1
			if tc.header {
				first = 2
			}
			if len(recs) != tc.rows || len(recs) != len(raw)-first {
				t.Fatalf("%d records from %d data lines, want %d", len(recs), len(raw)-first, tc.rows)
			}
			dec := stream.NewDecoder(stream.Limits{}, nil)
			var sumDollarMicros, sumAmountMicros, sumQty int64
			for i, rec := range recs {
				if rec.Line != i+first {
					t.Fatalf("record %d has line %d, want %d", i, rec.Line, i+first)
				}
				checkDecodesSampled(t, dec, rec)
				f := strings.Fields(raw[rec.Line])
				if len(f) == 5 {
					f = append(f[:1], f[2:]...) // drop the sample id
				}
				ev := rec.Event
				qty, _ := strconv.Atoi(f[2])
				dollars, _ := strconv.ParseFloat(f[3], 64)
				dollarMicros := int64(dollars*1e6 + 0.5)
				if ev.Type != stream.TypePurchase || ev.UserID != f[0] || ev.ItemID != source.CDNOWItemID ||
					ev.Category != source.CDNOWCategory || ev.Currency != "USD" || ev.Quantity != qty ||
					ev.EventID != tc.name+":L"+strconv.Itoa(rec.Line) ||
					ev.TS.Format("20060102") != f[1] || !ev.TS.Equal(ev.TS.Truncate(24*time.Hour)) {
					t.Fatalf("line %d %q mapped to %+v", rec.Line, raw[rec.Line], ev)
				}
				if d := ev.AmountMicros() - dollarMicros; 2*abs(d) > int64(qty) {
					t.Fatalf("line %d: price %v × %d = %d micros, dollar value %d micros: off by more than qty/2",
						rec.Line, *ev.Price, qty, ev.AmountMicros(), dollarMicros)
				}
				if diff := *ev.Price*float64(qty) - dollars; diff >= 1e-6*float64(qty) || -diff >= 1e-6*float64(qty) {
					t.Fatalf("line %d: price×qty differs from %v by %g", rec.Line, dollars, diff)
				}
				if tc.header {
					master[key(ev)]++
				} else if len(master) > 0 { // the master subtest ran

					if master[key(ev)] == 0 {
						t.Fatalf("sample line %d (%s) has no matching master transaction", rec.Line, key(ev))
					}
					master[key(ev)]--
				}
				sumDollarMicros += dollarMicros
				sumAmountMicros += ev.AmountMicros()
				sumQty += int64(qty)
			}
			if 2*abs(sumAmountMicros-sumDollarMicros) > sumQty {
				t.Fatalf("revenue %d micros vs dollar total %d micros", sumAmountMicros, sumDollarMicros)
			}
		})
	}
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

func f64(v float64) *float64 { return &v }

const rees46Header = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"

func TestREES46Rows(t *testing.T) {
	ts := time.Date(2019, 10, 1, 0, 0, 1, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		file   string // name given to NewReader
		input  string
		want   []stream.Event // nil entries: a *LineError is expected
		reason []stream.Reason
	}{
		{
			name:  "full row",
			file:  "oct.csv",
			input: rees46Header + "2019-10-01 00:00:01 UTC,purchase,17200506,2053013559792632471,furniture.living_room.sofa,ikea,543.10,519107250,566511c2\n",
			want: []stream.Event{{Schema: 1, EventID: "oct.csv:L2", Type: stream.TypePurchase, UserID: "519107250", TS: ts,
				SessionID: "566511c2", ItemID: "17200506", Category: "furniture.living_room.sofa", Brand: "ikea",
				Price: f64(543.10), PriceMicros: 543_100_000, Quantity: 1, Currency: "USD"}},
		},
		{
			name:  "empty category and brand stay empty; .gz and directory stripped from ids",
			file:  "some/dir/oct.csv.gz",
			input: rees46Header + "2019-10-01 00:00:01 UTC,remove_from_cart,44600062,2103807459595387724,,,0.00,541312140,s1\n",
			want: []stream.Event{{Schema: 1, EventID: "oct.csv:L2", Type: stream.TypeRemoveFromCart, UserID: "541312140", TS: ts,
				SessionID: "s1", ItemID: "44600062", Price: f64(0), Quantity: 1, Currency: "USD"}},
		},
		{
			name:  "columns found by name, CRLF and BOM tolerated, empty session allowed",
			file:  "x.csv",
			input: "\ufeffuser_id,user_session,price,brand,category_code,category_id,product_id,event_type,event_time,extra\r\n" + "7,,1.5,b,c.d,9,p,cart,2019-10-01 00:00:01 UTC,zzz\r\n",
			want: []stream.Event{{Schema: 1, EventID: "x.csv:L2", Type: stream.TypeCart, UserID: "7", TS: ts,
				ItemID: "p", Category: "c.d", Brand: "b", Price: f64(1.5), PriceMicros: 1_500_000, Quantity: 1, Currency: "USD"}},
		},
		{
			name: "bad rows are reported by line and skipped",
			file: "bad.csv",
			input: rees46Header +
				"2019-10-01 00:00:01 UTC,view,1,2,c,b,1.00,u\n" + // L2 8 fields
				"2019-10-01T00:00:01Z,view,1,2,c,b,1.00,u,s\n" + // L3 bad time
				"2019-10-01 00:00:01 UTC,click,1,2,c,b,1.00,u,s\n" + // L4 unknown type
				"2019-10-01 00:00:01 UTC,view,1,2,c,b,1e3,u,s\n" + // L5 bad price
				"2019-10-01 00:00:01 UTC,view,1,2,c,b,-1.00,u,s\n" + // L6 negative price
				"2019-10-01 00:00:01 UTC,view,1,2,c,b,1.00,,s\n" + // L7 no user
				"2019-10-01 00:00:01 UTC,view,,2,c,b,1.00,u,s\n" + // L8 no item
				"2019-10-01 00:00:01 UTC,purchase,1,2,c,b,,u,s\n" + // L9 purchase without price
				"\n" + // L10 blank: skipped
				"2019-10-01 00:00:01 UTC,view,1,2,c,b,1.00,u,s\n", // L11 good
			want:   []stream.Event{{}, {}, {}, {}, {}, {}, {}, {}, {Schema: 1, EventID: "bad.csv:L11", Type: stream.TypeView, UserID: "u", TS: ts, SessionID: "s", ItemID: "1", Category: "c", Brand: "b", Price: f64(1), PriceMicros: 1_000_000, Quantity: 1, Currency: "USD"}},
			reason: []stream.Reason{"", "", "", "", stream.ReasonNegativePrice, stream.ReasonMissingField, stream.ReasonMissingField, stream.ReasonMissingField, ""},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := source.NewReader(source.REES46, tc.file, strings.NewReader(tc.input))
			if err != nil {
				t.Fatal(err)
			}
			res, final := readResults(r, 100)
			if final != io.EOF {
				t.Fatalf("reader ended with %v, want io.EOF", final)
			}
			checkResults(t, res, tc.want, tc.reason)
		})
	}
}

// checkResults compares reader output with want, where a zero Event means
// "a *LineError is expected" (with reason[i] as its DecodeError reason when
// non-empty).
func checkResults(t *testing.T, res []result, want []stream.Event, reason []stream.Reason) {
	t.Helper()
	if len(res) != len(want) {
		t.Fatalf("got %d results, want %d: %+v", len(res), len(want), res)
	}
	dec := stream.NewDecoder(stream.Limits{}, nil)
	for i, w := range want {
		got := res[i]
		if w.EventID == "" {
			var le *source.LineError
			if !errors.As(got.err, &le) || le.Line <= 0 {
				t.Errorf("result %d: got %+v, %v; want a *LineError", i, got.rec, got.err)
				continue
			}
			if i < len(reason) && reason[i] != "" {
				var de *stream.DecodeError
				if !errors.As(got.err, &de) || de.Reason != reason[i] {
					t.Errorf("result %d: %v, want decode reason %s", i, got.err, reason[i])
				}
			}
			continue
		}
		if got.err != nil {
			t.Errorf("result %d: %v", i, got.err)
			continue
		}
		if !reflect.DeepEqual(got.rec.Event, w) {
			t.Errorf("result %d:\n got %+v\nwant %+v", i, got.rec.Event, w)
		}
		checkDecodes(t, dec, got.rec)
	}
}

func TestREES46BadHeaderEndsReader(t *testing.T) {
	for _, input := range []string{"", "a,b,c\n1,2,3\n", strings.Replace(rees46Header, "user_id", "uid", 1)} {
		r, err := source.NewReader(source.REES46, "h.csv", strings.NewReader(input))
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // sticky
			if _, err := r.Next(); !errors.Is(err, source.ErrBadHeader) {
				t.Fatalf("input %q: Next() = %v, want ErrBadHeader", input, err)
			}
		}
	}
}

func TestCDNOWRows(t *testing.T) {
	day := time.Date(1997, 1, 1, 0, 0, 0, 0, time.UTC)
	purchase := func(id, user string, qty int, micros int64) stream.Event {
		p := float64(micros) / 1e6
		return stream.Event{Schema: 1, EventID: id, Type: stream.TypePurchase, UserID: user, TS: day,
			ItemID: "cdnow", Category: "music.cd", Price: &p, PriceMicros: micros, Quantity: qty, Currency: "USD"}
	}
	for _, tc := range []struct {
		name   string
		input  string
		want   []stream.Event
		reason []stream.Reason
	}{
		{
			name:  "master layout with header",
			input: " customer_id  date number_of_cds  dollar_value\n 00001 19970101  1   11.77\n 00002 19970101  2   29.33\n",
			want:  []stream.Event{purchase("c.txt:L2", "00001", 1, 11_770_000), purchase("c.txt:L3", "00002", 2, 14_665_000)},
		},
		{
			name:  "sample layout, blank lines counted but skipped",
			input: " 00004 0001 19970101  2   29.33\n\n   \n 00004 0001 19970101  3   10.00\n",
			want:  []stream.Event{purchase("c.txt:L1", "00004", 2, 14_665_000), purchase("c.txt:L4", "00004", 3, 3_333_333)},
		},
		{
			name: "unit price rounds half away from zero; zero CDs is one unit at price 0",
			input: "00001 19970101 32 0.01\n" + // 312.5 micros → 313
				"00001 19970101 3 0.02\n" + // 6666.67 → 6667
				"00001 19970101 0 5.00\n" +
				"00001 19970101 1 0.00\n",
			want: []stream.Event{purchase("c.txt:L1", "00001", 32, 313), purchase("c.txt:L2", "00001", 3, 6667),
				purchase("c.txt:L3", "00001", 1, 0), purchase("c.txt:L4", "00001", 1, 0)},
		},
		{
			name: "a header is only a header on the first line; bad rows reported and skipped",
			input: "00001 19970101 1 1.00\n" +
				"customer_id date number_of_cds dollar_value\n" + // L2
				"00001 1997-01-01 1 1.00\n" + // L3 date
				"00001 19970231 1 1.00\n" + // L4 no such day
				"00001 19970101 -1 1.00\n" + // L5 cds
				"00001 19970101 1 $1.00\n" + // L6 dollars
				"00001 19970101 1\n" + // L7 3 fields
				"x0001 19970101 1 1.00\n" + // L8 customer
				"00001 x001 19970101 1 1.00\n" + // L9 sample id
				"00001 19970101 1 -1.00\n" + // L10 negative
				"00001 19970101 20000 1.00\n" + // L11 quantity limit
				"00001 29990101 1 1.00\n" + // L12 far future
				"00001 19690101 1 1.00\n" + // L13 before 1970
				"00002 19970101 1 2.00\n", // L14
			want: []stream.Event{purchase("c.txt:L1", "00001", 1, 1_000_000), {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {},
				purchase("c.txt:L14", "00002", 1, 2_000_000)},
			reason: []stream.Reason{"", "", "", "", "", "", "", "", "", stream.ReasonNegativePrice, stream.ReasonBadField,
				stream.ReasonFutureTime, stream.ReasonBadTime, ""},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := source.NewReader(source.CDNOW, "c.txt", strings.NewReader(tc.input))
			if err != nil {
				t.Fatal(err)
			}
			res, final := readResults(r, 100)
			if final != io.EOF {
				t.Fatalf("reader ended with %v, want io.EOF", final)
			}
			checkResults(t, res, tc.want, tc.reason)
		})
	}
}

func TestJSONL(t *testing.T) {
	good := `{"schema":1,"event_id":"e1","type":"view","user_id":"u","ts":"2019-10-01T00:00:00Z","item_id":"i"}`
	bad := `{"schema":1,"event_id":"e2","type":"view","user_id":"u","ts":"2019-10-01T00:00:00Z"}`
	huge := `{"schema":1,"event_id":"e3","type":"view","user_id":"u","ts":"2019-10-01T00:00:00Z","item_id":"i","pad":"` +
		strings.Repeat("x", 70<<10) + `"}`
	tooLong := strings.Repeat(" ", source.MaxLineBytes+1)
	input := good + "\n\n  \t\n" + bad + "\r\n" + "not json\n" + huge + "\n" + tooLong + "\n" + good + "\r\n" + good
	r, err := source.NewReader(source.JSONL, "", strings.NewReader(input))
	if err != nil {
		t.Fatal(err)
	}
	res, final := readResults(r, 100)
	if final != io.EOF {
		t.Fatalf("reader ended with %v", final)
	}
	want := []struct {
		line   int
		value  string
		reason stream.Reason // "" for a good record
		long   bool
	}{
		{1, good, "", false},
		{4, bad, stream.ReasonMissingField, false},
		{5, "not json", stream.ReasonMalformed, false},
		{6, huge, stream.ReasonTooLarge, false},
		{7, "", "", true},
		{8, good, "", false},
		{9, good, "", false},
	}
	if len(res) != len(want) {
		t.Fatalf("%d results, want %d", len(res), len(want))
	}
	for i, w := range want {
		got := res[i]
		if got.rec.Line != w.line || string(got.rec.Value) != w.value {
			t.Errorf("result %d: line %d value %.40q, want line %d value %.40q", i, got.rec.Line, got.rec.Value, w.line, w.value)
		}
		var le *source.LineError
		switch {
		case w.long:
			if !errors.As(got.err, &le) || le.Line != w.line || !errors.Is(got.err, source.ErrLineTooLong) {
				t.Errorf("result %d: %v, want ErrLineTooLong on line %d", i, got.err, w.line)
			}
		case w.reason != "":
			var de *stream.DecodeError
			if !errors.As(got.err, &le) || le.Line != w.line || !errors.As(got.err, &de) || de.Reason != w.reason {
				t.Errorf("result %d: %v, want %s on line %d", i, got.err, w.reason, w.line)
			}
		default:
			if got.err != nil || got.rec.Event.EventID != "e1" {
				t.Errorf("result %d: %+v %v", i, got.rec.Event, got.err)
			}
		}
	}
}

func TestParseFormat(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want source.Format
		ok   bool
	}{
		{"jsonl", source.JSONL, true}, {"REES46", source.REES46, true}, {" cdnow ", source.CDNOW, true},
		{"", "", false}, {"csv", "", false}, {"json", "", false},
	} {
		got, err := source.ParseFormat(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseFormat(%q) = %q, %v", tc.in, got, err)
		}
		if !tc.ok && !errors.Is(err, source.ErrUnknownFormat) {
			t.Errorf("ParseFormat(%q) error %v does not wrap ErrUnknownFormat", tc.in, err)
		}
	}
}

func TestNewReaderArguments(t *testing.T) {
	if _, err := source.NewReader("xml", "a", strings.NewReader("")); !errors.Is(err, source.ErrUnknownFormat) {
		t.Errorf("unknown format: %v", err)
	}
	for _, f := range []source.Format{source.REES46, source.CDNOW} {
		if _, err := source.NewReader(f, "", strings.NewReader("")); err == nil {
			t.Errorf("%s without a name: no error", f)
		}
	}
	if _, _, err := source.Open("xml", source.EmbeddedPrefix+data.CDNOWSample); !errors.Is(err, source.ErrUnknownFormat) {
		t.Errorf("Open unknown format: %v", err)
	}
	if _, _, err := source.Open(source.CDNOW, source.EmbeddedPrefix+"nope.txt"); err == nil {
		t.Error("Open of an unknown embedded dataset succeeded")
	}
	if _, _, err := source.Open(source.CDNOW, filepath.Join(t.TempDir(), "missing.txt")); err == nil {
		t.Error("Open of a missing file succeeded")
	}
}

// TestOpenFilesCompressedOrNot writes the same rows plain and gzipped and
// checks that both yield the same events, ids included, and that reading a
// file twice gives the same ids (replays are deduplicated).
func TestOpenFilesCompressedOrNot(t *testing.T) {
	raw := rawLines(t, data.REES46Sample)
	plain := strings.Join(raw[1:200], "\n") + "\n"
	dir := t.TempDir()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write([]byte(plain)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "head.csv"), []byte(plain), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "head.csv.gz"), gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	read := func(name string) []source.Record {
		r, c, err := source.Open(source.REES46, filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := c.Close(); err != nil {
				t.Error(err)
			}
		}()
		return readAll(t, r)
	}
	a, b, again := read("head.csv"), read("head.csv.gz"), read("head.csv")
	if len(a) != 198 {
		t.Fatalf("%d records, want 198", len(a))
	}
	if !reflect.DeepEqual(a, b) || !reflect.DeepEqual(a, again) {
		t.Fatal("plain, gzipped and repeated reads differ")
	}
	if a[0].Event.EventID != "head.csv:L2" {
		t.Fatalf("first id %q", a[0].Event.EventID)
	}
	// ReadAll: the same records; a line that is not an event ends it.
	if all, err := source.ReadAll(source.REES46, filepath.Join(dir, "head.csv.gz")); err != nil || !reflect.DeepEqual(all, a) {
		t.Fatalf("ReadAll: %d records, %v; want the %d read one by one", len(all), err, len(a))
	}
	if err := os.WriteFile(filepath.Join(dir, "broken.csv"), []byte(plain+"not,an,event\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var le *source.LineError
	if _, err := source.ReadAll(source.REES46, filepath.Join(dir, "broken.csv")); !errors.As(err, &le) {
		t.Fatalf("ReadAll of a file with a bad line: %v, want a *LineError", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.csv.gz"), []byte(plain), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := source.Open(source.REES46, filepath.Join(dir, "bad.csv.gz")); err == nil {
		t.Fatal("a .gz file that is not gzip opened without error")
	}
}
