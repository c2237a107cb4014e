package clv_test

import (
	"bufio"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/data"
	"github.com/streamprofile/streamprofile/model/clv"
)

// The CDNOW calibration convention of Fader, Hardie & Lee (2005): 39 weekly
// periods from 1997-01-01, i.e. through 1997-09-30 inclusive, in weeks.
var (
	calibrationEnd = time.Date(1997, 9, 30, 0, 0, 0, 0, time.UTC)
	week           = 7 * 24 * time.Hour
)

// readCDNOW parses a CDNOW file. The master file has a header and the fields
// `customer_id date cds dollars`; the sample has no header and the fields
// `master_id sample_id date cds dollars`. Customers are keyed by master id.
func readCDNOW(name string) ([]clv.Txn, error) {
	rc, err := data.Open(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var txns []clv.Txn
	sc := bufio.NewScanner(rc)
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] == "customer_id" {
			continue
		}
		var id, date, dollars string
		switch len(f) {
		case 4:
			id, date, dollars = f[0], f[1], f[3]
		case 5:
			id, date, dollars = f[0], f[2], f[4]
		default:
			return nil, fmt.Errorf("%s:%d: %d fields", name, line, len(f))
		}
		t, err := time.Parse("20060102", date)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, line, err)
		}
		v, err := strconv.ParseFloat(dollars, 64)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, line, err)
		}
		txns = append(txns, clv.Txn{Customer: id, Time: t, Amount: v})
	}
	return txns, sc.Err()
}

// cdnowSet is one CDNOW file summarised at the calibration end, with the
// customer ids in a fixed order.
type cdnowSet struct {
	txns      []clv.Txn
	ids       []string
	customers []clv.Customer
}

var (
	cdnowOnce  = map[string]*sync.Once{data.CDNOWSample: {}, data.CDNOWMaster: {}}
	cdnowCache = map[string]*cdnowSet{}
	cdnowErr   = map[string]error{}
)

// loadCDNOW reads and summarises a CDNOW file once per test binary.
func loadCDNOW(tb testing.TB, name string) *cdnowSet {
	tb.Helper()
	cdnowOnce[name].Do(func() {
		txns, err := readCDNOW(name)
		if err != nil {
			cdnowErr[name] = err
			return
		}
		sum, err := clv.Summarize(txns, calibrationEnd, week)
		if err != nil {
			cdnowErr[name] = err
			return
		}
		s := &cdnowSet{txns: txns}
		for id := range sum {
			s.ids = append(s.ids, id)
		}
		slices.Sort(s.ids)
		for _, id := range s.ids {
			s.customers = append(s.customers, sum[id])
		}
		cdnowCache[name] = s
	})
	if err := cdnowErr[name]; err != nil {
		tb.Fatalf("load %s: %v", name, err)
	}
	return cdnowCache[name]
}
