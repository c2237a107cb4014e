package stream_test

import (
	"errors"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/data"
	"github.com/streamprofile/streamprofile/stream"
	"github.com/streamprofile/streamprofile/stream/source"
)

// decoderReasons are the reasons Decode may give.
var decoderReasons = map[stream.Reason]bool{
	stream.ReasonMalformed: true, stream.ReasonTooLarge: true, stream.ReasonUnknownSchema: true,
	stream.ReasonMissingField: true, stream.ReasonBadField: true, stream.ReasonBadTime: true,
	stream.ReasonFutureTime: true, stream.ReasonNegativePrice: true,
}

// seedBundled adds the first n encoded events of an embedded dataset.
func seedBundled(f *testing.F, format source.Format, name string, n int) {
	r, c, err := source.Open(format, source.EmbeddedPrefix+name)
	if err != nil {
		f.Fatal(err)
	}
	defer c.Close()
	for range n {
		rec, err := r.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			f.Fatal(err)
		}
		f.Add(rec.Value)
	}
}

// FuzzDecode: Decode never panics; every failure is a *DecodeError with a
// known Reason; every accepted event re-encodes to a value that decodes to
// the same Event.
func FuzzDecode(f *testing.F) {
	seedBundled(f, source.REES46, data.REES46Sample, 40)
	seedBundled(f, source.CDNOW, data.CDNOWMaster, 10)
	seedBundled(f, source.CDNOW, data.CDNOWSample, 10)
	for _, c := range badCases {
		f.Add([]byte(c.in))
	}
	for _, c := range goodCases {
		f.Add([]byte(c.in))
	}
	dec := newTestDecoder()
	// Encode can be longer than the value it was decoded from (unknown
	// fields go, but it escapes <, >, &, U+2028 and U+2029 and replaces
	// invalid UTF-8 with U+FFFD), so an event accepted just under
	// MaxEventBytes may re-encode just over it. The re-decode therefore
	// allows larger values; every other limit is the same.
	limits := stream.DefaultLimits
	limits.MaxEventBytes *= 4
	redec := stream.NewDecoder(limits, func() time.Time { return testNow })
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := dec.Decode(b)
		if err != nil {
			var de *stream.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T %v is not a *stream.DecodeError", err, err)
			}
			if !decoderReasons[de.Reason] || de.Msg == "" {
				t.Fatalf("DecodeError %#v has an unknown reason or no message", de)
			}
			return
		}
		v, err := stream.Encode(&e)
		if err != nil {
			t.Fatalf("accepted %+v does not encode: %v", e, err)
		}
		again, err := redec.Decode(v)
		if err != nil {
			t.Fatalf("re-encoded event %s rejected: %v (input %q)", v, err, b)
		}
		if !reflect.DeepEqual(again, e) {
			t.Fatalf("round trip changed the event\n got %+v\nwant %+v", again, e)
		}
	})
}
