package privacy_test

import (
	"testing"

	"github.com/streamprofile/streamprofile/privacy"
	"github.com/streamprofile/streamprofile/stream"
)

// The hot path: MaskString on short fields without personal data must stay
// well under 1 µs and allocate nothing.
func BenchmarkMaskString(b *testing.B) {
	m := newMasker(b)
	for _, bc := range []struct{ name, s string }{
		{"clean/brand", "samsung"},
		{"clean/category", "electronics.smartphone"},
		{"clean/query", "galaxy s10 case black"},
		{"clean/session", "72d76fde-8bb3-4e00-8c23-a032dfed738c"},
		{"clean/timestamp", "2019-10-01 00:00:00 UTC"},
		{"clean/review-200B", "Great phone, battery lasts two days, camera is fine in daylight but struggles at night. " +
			"Delivered in 3 days, packaging ok. Price 499.99 was fair; would buy again for my family of 4."},
		{"pii/email", "contact bob@example.com please"},
		{"pii/phone", "call +49 151 12345678 now"},
		{"pii/ipv6", "from fe80::1 today"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.s)))
			for b.Loop() {
				m.MaskString(bc.s)
			}
		})
	}
}

func BenchmarkDropPII(b *testing.B) {
	m := newMasker(b)
	price := 35.79
	ev := stream.Event{Schema: 1, EventID: "rees46-2019-oct-head.csv:2", Type: stream.TypeView, UserID: "541312140",
		SessionID: "72d76fde-8bb3-4e00-8c23-a032dfed738c", ItemID: "44600062", Category: "appliances.environment.water_heater",
		Brand: "shiseido", Currency: "USD", Price: &price, Quantity: 1}
	b.ReportAllocs()
	for b.Loop() {
		e := ev
		if m.DropPII(&e).Found() {
			b.Fatal("found personal data in a clean event")
		}
	}
}

func BenchmarkMaskJSON(b *testing.B) {
	m := newMasker(b)
	for _, bc := range []struct{ name, s string }{
		{"clean", `{"schema":1,"event_id":"rees46-2019-oct-head.csv:2","type":"view","user_id":"541312140","ts":"2019-10-01T00:00:00Z","session_id":"72d76fde-8bb3-4e00-8c23-a032dfed738c","item_id":"44600062","brand":"shiseido","price":35.79,"quantity":1,"currency":"USD"}`},
		{"pii", `{"schema":1,"event_id":"e1","type":"search","user_id":"u1","ts":"2019-10-01T00:00:00Z","query":"call me at +49 151 12345678 or bob@example.com"}`},
	} {
		raw := []byte(bc.s)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if _, _, err := m.MaskJSON(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkPseudonym(b *testing.B) {
	p, err := privacy.New([]privacy.Key{{ID: "k1", Secret: secret(1)}, {ID: "k0", Secret: secret(2)}})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Pseudonym", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p.Pseudonym("541312140")
		}
	})
	b.Run("Candidates/2keys", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p.Candidates("541312140")
		}
	})
	b.Run("Pseudonym/parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				p.Pseudonym("541312140")
			}
		})
	})
}
