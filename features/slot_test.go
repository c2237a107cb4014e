package features

import (
	"fmt"
	"testing"
)

// Reference values from Redis' CLUSTER KEYSLOT (see the Redis Cluster
// specification: "123456789" → 12739; the others read from a real
// cluster).
func TestSlotMatchesRedis(t *testing.T) {
	for tag, want := range map[string]int{"123456789": 12739, "": 0, "user1000": 3443, "foo": 12182} {
		if got := Slot(tag); got != want {
			t.Errorf("Slot(%q) = %d, want %d", tag, got, want)
		}
	}
}

func TestSlotTagSharesTheSlotWithoutNamingTheUser(t *testing.T) {
	for i := 0; i < 2000; i++ {
		u := fmt.Sprintf("user-%d@example", i)
		tag := SlotTag(u)
		if Slot(tag) != Slot(u) {
			t.Fatalf("SlotTag(%q) = %q in slot %d, want slot %d", u, tag, Slot(tag), Slot(u))
		}
		if len(tag) > 4 {
			t.Fatalf("SlotTag(%q) = %q: should be a short stand-in", u, tag)
		}
	}
}
