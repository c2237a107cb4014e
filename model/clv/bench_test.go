package clv_test

import (
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/data"
	"github.com/streamprofile/streamprofile/model/clv"
)

// BenchmarkFitBGNBDMaster fits the BG/NBD model to the 23,570 customers of
// the CDNOW master file (target: well under a second per fit).
func BenchmarkFitBGNBDMaster(b *testing.B) {
	s := loadCDNOW(b, data.CDNOWMaster)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := clv.FitBGNBD(s.customers, clv.FitOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFitGammaGammaMaster fits the Gamma-Gamma model to the repeat
// buyers of the CDNOW master file.
func BenchmarkFitGammaGammaMaster(b *testing.B) {
	s := loadCDNOW(b, data.CDNOWMaster)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := clv.FitGammaGamma(s.customers, clv.FitOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSummarizeMaster summarises the 69,659 transactions of the CDNOW
// master file.
func BenchmarkSummarizeMaster(b *testing.B) {
	s := loadCDNOW(b, data.CDNOWMaster)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := clv.Summarize(s.txns, calibrationEnd, week); err != nil {
			b.Fatal(err)
		}
	}
}

var sink float64

func BenchmarkPAlive(b *testing.B) {
	c := clv.Customer{Frequency: 2, Recency: 30.43, T: 38.86}
	b.ReportAllocs()
	for b.Loop() {
		sink = publishedBGNBD.PAlive(c)
	}
}

func BenchmarkExpectedPurchases(b *testing.B) {
	c := clv.Customer{Frequency: 2, Recency: 30.43, T: 38.86}
	b.ReportAllocs()
	for b.Loop() {
		sink = publishedBGNBD.ExpectedPurchases(13, c)
	}
}

// BenchmarkSummaryAddCustomer is the per-event cost of the streaming
// summary: one Add and one Customer.
func BenchmarkSummaryAddCustomer(b *testing.B) {
	var s clv.Summary
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		t := t0.Add(time.Duration(i) * time.Hour)
		i++
		if err := s.Add(t, 9.99); err != nil {
			b.Fatal(err)
		}
		c, err := s.Customer(t, week)
		if err != nil {
			b.Fatal(err)
		}
		sink = c.T
	}
}
