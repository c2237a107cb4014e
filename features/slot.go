package features

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"sync"
)

// Redis Cluster assigns a key to one of 16384 slots by the CRC16 (XMODEM) of
// its hash tag. Keys that must sit in a user's slot without naming the user
// (the erasure marker outlives the profile, so it must not identify it) use
// a short stand-in tag with the same slot.

const clusterSlots = 16384

func crc16(b string) uint16 {
	var crc uint16
	for i := 0; i < len(b); i++ {
		crc ^= uint16(b[i]) << 8
		for j := 0; j < 8; j++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// Slot returns the Redis Cluster slot of a hash tag.
func Slot(tag string) int { return int(crc16(tag) % clusterSlots) }

var slotTags = sync.OnceValue(func() *[clusterSlots]string {
	var t [clusterSlots]string
	left := clusterSlots
	for i := 0; left > 0; i++ {
		s := strconv.FormatInt(int64(i), 36)
		if slot := Slot(s); t[slot] == "" {
			t[slot] = s
			left--
		}
	}
	return &t
})

// SlotTag returns a short tag, not derived from any user data but the slot,
// whose keys share the slot of keys tagged {user}.
func SlotTag(user string) string { return slotTags()[Slot(user)] }

// UserDigest is a one-way digest of a stored user id, for keys and values
// that must recognise the user without naming them.
func UserDigest(user string) string {
	h := sha256.Sum256([]byte("streamprofile/erased/v1\x00" + user))
	return hex.EncodeToString(h[:16])
}
