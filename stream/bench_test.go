package stream_test

import (
	"errors"
	"io"
	"testing"

	"github.com/streamprofile/streamprofile/data"
	"github.com/streamprofile/streamprofile/stream"
	"github.com/streamprofile/streamprofile/stream/source"
)

// sampleValues returns the message values of the bundled REES46 sample as
// the replay publishes them.
func sampleValues(tb testing.TB) [][]byte {
	tb.Helper()
	r, c, err := source.Open(source.REES46, source.EmbeddedPrefix+data.REES46Sample)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	var out [][]byte
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, rec.Value)
	}
}

// BenchmarkDecoderDecode decodes and validates real events (the first step
// of the pipeline, and the whole of the benchmark harness's consume floor
// besides fetching). Reported: events/s on one core.
func BenchmarkDecoderDecode(b *testing.B) {
	vals := sampleValues(b)
	dec := stream.NewDecoder(stream.Limits{}, nil)
	var bytes int64
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		v := vals[i%len(vals)]
		if _, err := dec.Decode(v); err != nil {
			b.Fatal(err)
		}
		bytes += int64(len(v))
		i++
	}
	b.SetBytes(bytes / int64(max(i, 1)))
	b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "events/s")
}
