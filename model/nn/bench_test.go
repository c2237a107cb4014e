package nn

import (
	"fmt"
	"testing"
)

// benchArch is the production shape: default token fields, buckets, widths
// and heads, with a handful of numeric features.
func benchArch(batch int) Arch {
	return Arch{
		NumericFeatures: []string{"recency_days", "frequency", "monetary", "balance"},
		BatchSize:       batch,
	}
}

// benchExamples draws synthetic examples whose bucket ids span the default
// 1024 buckets.
func benchExamples(n int) []Example {
	exs := synth(40, n)
	for i := range exs {
		for f, ids := range exs[i].Tokens {
			spread := make([]uint32, len(ids))
			for j, id := range ids {
				spread[j] = (id*16 + uint32(i)) % DefaultHashBuckets
			}
			exs[i].Tokens[f] = spread
		}
	}
	return exs
}

func BenchmarkTrainBatch(b *testing.B) {
	for _, size := range []int{32, 128, 512} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			n := newTestNetwork(b, benchArch(size))
			batch := benchExamples(size)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := n.TrainBatch(batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "examples/s")
		})
	}
}

func benchModel(b *testing.B) (*Model, []Example) {
	n := newTestNetwork(b, benchArch(128))
	exs := benchExamples(256)
	for range 5 {
		if _, err := n.TrainBatch(exs); err != nil {
			b.Fatal(err)
		}
	}
	return snapshot(b, n), exs
}

func BenchmarkPredict(b *testing.B) {
	m, exs := benchModel(b)
	b.Run("Predict", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := m.Predict(exs[i%len(exs)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(b.Elapsed().Seconds()*1e6/float64(b.N), "µs/score")
	})
	b.Run("PredictInto", func(b *testing.B) {
		b.ReportAllocs()
		dst := make([]float64, len(m.arch.Heads))
		i := 0
		for b.Loop() {
			if _, err := m.PredictInto(dst, exs[i%len(exs)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(b.Elapsed().Seconds()*1e6/float64(b.N), "µs/score")
	})
	b.Run("Parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			dst := make([]float64, len(m.arch.Heads))
			i := 0
			for pb.Next() {
				if _, err := m.PredictInto(dst, exs[i%len(exs)]); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
	})
}

func BenchmarkExplain(b *testing.B) {
	m, exs := benchModel(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := m.Explain(exs[i%len(exs)], nil); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(b.Elapsed().Seconds()*1e6/float64(b.N), "µs/explain")
}

func BenchmarkSnapshot(b *testing.B) {
	n := newTestNetwork(b, benchArch(128))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := n.Snapshot(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalBinary(b *testing.B) {
	m, _ := benchModel(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
}
