package stream

import (
	"encoding/json"
	"fmt"
	"reflect"
)

// CheckParseFast runs the decoder's fast path on b. When it accepts b, it
// checks that json.Unmarshal (the path it stands in for) accepts b too and
// fills the same fields, and describes any difference in diff.
func CheckParseFast(b []byte) (accepted bool, diff string) {
	var w wireEvent
	if !w.parseFast(b) {
		return false, ""
	}
	var ref wireEvent
	if err := json.Unmarshal(b, &ref); err != nil {
		return true, "json.Unmarshal rejects it: " + err.Error()
	}
	w.Schema, w.Price, w.Quantity = w.fastNumbers()
	got := w
	got.schemaV, got.priceV, got.quantityV, got.numbers = 0, 0, 0, 0
	if !reflect.DeepEqual(got, ref) {
		return true, fmt.Sprintf("fast path %+v, json.Unmarshal %+v", got, ref)
	}
	return true, ""
}
