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
	if w.numbers&(1<<fSchema) != 0 {
		w.Schema = &w.schemaV
	}
	if w.numbers&(1<<fPrice) != 0 {
		w.Price = &w.priceV
	}
	if w.numbers&(1<<fQuantity) != 0 {
		w.Quantity = &w.quantityV
	}
	got := w
	got.schemaV, got.priceV, got.quantityV, got.numbers = 0, 0, 0, 0
	if !reflect.DeepEqual(got, ref) {
		return true, fmt.Sprintf("fast path %+v, json.Unmarshal %+v", got, ref)
	}
	return true, ""
}
