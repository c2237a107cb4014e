package clv_test

import (
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/data"
	"github.com/streamprofile/streamprofile/model/clv"
	"github.com/streamprofile/streamprofile/model/metrics"
)

// holdoutBuyers returns, for each calibration customer, whether they bought
// in the days after the calibration end up to and including the horizon.
func holdoutBuyers(s *cdnowSet, days int) []bool {
	end := calibrationEnd.AddDate(0, 0, days)
	bought := make(map[string]bool)
	for _, t := range s.txns {
		if t.Time.After(calibrationEnd) && !t.Time.After(end) {
			bought[t.Customer] = true
		}
	}
	labels := make([]bool, len(s.ids))
	for i, id := range s.ids {
		labels[i] = bought[id]
	}
	return labels
}

// TestBGNBDRanksNextQuarterBuyers measures how well the calibration fit ranks
// the customers who buy in the 90 days after 1997-09-30, on the 1/10th
// sample and on the full master file (each fitted on its own calibration
// data). The BG/NBD scores must beat ranking by frequency alone, which
// ignores recency and age.
func TestBGNBDRanksNextQuarterBuyers(t *testing.T) {
	for _, name := range []string{data.CDNOWSample, data.CDNOWMaster} {
		t.Run(name, func(t *testing.T) {
			s := loadCDNOW(t, name)
			start := time.Now()
			m, res, err := clv.FitBGNBD(s.customers, clv.FitOptions{})
			if err != nil {
				t.Fatal(err)
			}
			fitTime := time.Since(start)
			labels := holdoutBuyers(s, 90)
			expected := make([]float64, len(s.customers))
			alive := make([]float64, len(s.customers))
			freq := make([]float64, len(s.customers))
			buyers := 0
			for i, c := range s.customers {
				expected[i] = m.ExpectedPurchases(13, c)
				alive[i] = m.PAlive(c)
				freq[i] = c.Frequency
				if labels[i] {
					buyers++
				}
			}
			aucE := metrics.AUC(expected, labels)
			aucA := metrics.AUC(alive, labels)
			aucF := metrics.AUC(freq, labels)
			t.Logf("%d customers, %d buy in the next 90 days; fit %v LL %.2f in %v (%d evaluations)",
				len(s.customers), buyers, m, res.LogLikelihood, fitTime, res.Evaluations)
			t.Logf("AUC: E[Y(13 weeks)] %.4f, P(alive) %.4f, frequency %.4f", aucE, aucA, aucF)
			if !(aucE > 0.75) {
				t.Errorf("AUC of E[Y(13)] = %.4f, want > 0.75", aucE)
			}
			if !(aucE > aucF) {
				t.Errorf("AUC of E[Y(13)] = %.4f does not beat frequency alone (%.4f)", aucE, aucF)
			}
		})
	}
}
