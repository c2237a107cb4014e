// Package privacy holds streamprofile's privacy building blocks: keyed
// pseudonyms for user and anonymous ids, and detection and masking of
// personal data (e-mail addresses, phone numbers, IP addresses) in free
// text, arbitrary JSON and clickstream events.
//
// # Pseudonyms
//
// A Pseudonymizer maps an id to a stable, non-reversible pseudonym with a
// keyed HMAC-SHA256, so the profile store, logs and API responses can hold
// pseudonyms instead of the ids producers send:
//
//	pseudonym = "p1" + keyID + ":" + base32(HMAC-SHA256(secret, "streamprofile/pseudonym/v1\x00" + id)[:20])
//
// where base32 is the RFC 4648 alphabet in lower case without padding, so
// the digest part is always 32 characters of [a-z2-7] (160 bits). "p1" is
// the format version. A key id is 1 to 16 characters of [A-Za-z0-9_-], so a
// pseudonym never contains '{', '}', ':' (other than the one separator),
// spaces or anything that needs quoting: it is safe inside a Redis Cluster
// hash tag (sp:{p1k2025:…}:p) and in a URL path segment. Example: with key
// id "k1" and the secret bytes 0, 1, …, 31, the pseudonym of "user-42" is
// "p1k1:cb2w7ijwlnvt432f42l2yg4btebxanuc" (a test pins this vector).
//
// The fixed prefix inside the HMAC input separates these pseudonyms from any
// other use of the same secret. The same id under the same key always gives
// the same pseudonym, in every process; without the secret a pseudonym can
// neither be reversed nor recomputed from a guessed id.
//
// With no key configured (New(nil)) pseudonymisation is off: Pseudonym and
// Candidates return the id unchanged and Enabled reports false. That is a
// deliberate, visible choice for development; a deployment that must not
// store raw ids should refuse to start without a key file.
//
// # Key rotation
//
// The first key given to New is current: Pseudonym uses it, and so does
// every write. Candidates returns the pseudonym under every configured key,
// current first, so reads keep finding data written under older keys. An
// HMAC cannot be inverted, so data cannot be moved to a new key without the
// raw id; rotation therefore relies on re-keying when an id is seen again,
// and on expiry for ids that are not. The procedure:
//
//  1. Add the new key as a second, non-current entry of the key file on
//     every process (readers and writers). Nothing changes yet, but every
//     process can now compute pseudonyms under both keys.
//  2. When every process has the new file, move the new key to the first
//     position (current) everywhere. Writes now use the new key; reads try
//     the new key, then the old one (dual-read through Candidates).
//  3. Re-key: whenever a writer sees an id whose data is found only under
//     an older candidate, it moves that data to the current pseudonym (copy
//     under the new key, delete the old key, in one transaction when both
//     share a slot, else copy first, delete second, so a crash leaves a
//     duplicate rather than a loss). A batch job can do the same for every
//     id it can enumerate from a source of raw ids. Data of ids never seen
//     again expires with the store's TTL (30 days by default).
//  4. Once the TTL has passed since step 2 (plus a margin) and no key of
//     the old key id remains (KeyOf tells a pseudonym's key id), remove the
//     old key from the file. A key removed too early makes the data still
//     under it unreachable, which for pseudonymised data equals erasure.
//
// Key files are read by LoadKeyFile: either YAML,
//
//	keys:
//	  - id: k2026
//	    secret: <base64 of at least 32 random bytes>
//	  - id: k2025
//	    secret: <base64>
//
// or one "id:base64secret" per line ('#' starts a comment line, blank lines
// are ignored). A file whose first significant line starts with "keys:" is
// YAML. Secrets shorter than 32 bytes are rejected. A suitable secret:
// `openssl rand -base64 32`.
//
// # Masking personal data
//
// A Masker finds e-mail addresses, phone numbers and IPv4/IPv6 addresses and
// replaces each with a placeholder naming its kind: "[redacted:email]",
// "[redacted:phone]", "[redacted:ip]". Masking is idempotent (masking the
// output again changes nothing) and leaves no detectable item behind, even
// where replacing one item exposes another.
//
// Detection favours precision on the values a clickstream is made of; what
// is and is not a match:
//
//   - e-mail: local@domain.tld, where the TLD is at least two letters.
//   - IPv4: a dotted quad of numbers up to 255 not glued to a letter or a
//     further dot-number ("v1.2.3.4" and "1.2.3.4.5" are versions).
//   - IPv6: anything net/netip parses, of hex digits, colons and dots with
//     at least two colons and one hex digit, not glued to a word
//     ("std::vector" is not an address, "12:30:45" does not parse).
//   - phone: 7 to 15 digits (MaskerConfig.MinPhoneDigits) either in E.164
//     form ("+4915112345678", "+1 555 123 4567") or grouped by single
//     spaces, dashes or dots, or with the area code in parentheses
//     ("(555) 123-4567", "06 12 34 56 78", "020 7946 0958"). A run of
//     digits without separators or '+' is never a phone number, so product
//     ids, category ids (2053013555631882655) and Unix timestamps stay.
//     Also never a phone number: decimals ("12345.67"), numbers with
//     thousands separators ("1.234.567", "1 234 567"), dates at the start of
//     a group ("2019-10-01 00:00:00", "01.10.2019"), two groups that look
//     like a range ("1000-2000"; two groups are a phone number only with a
//     trunk prefix 0 or as a US local number "555-1234"), dotted version
//     numbers with a one-digit group ("10.0.19041"), and digit groups glued
//     to a word by '-', '.' or '/' (UUID session ids, "SKU-123-4567",
//     "Chrome/118.0.5993.117").
//
// A string is scanned by the detectors only when a cheap pre-check finds
// what each kind needs ('@'; two colons; four digits and three dots; seven
// digits), so the common case, a short field without personal data, costs
// one pass over its bytes and no allocation.
//
// MaskJSON masks every string value of a JSON document (object keys are
// kept: masking them could merge distinct keys) and copies everything else
// byte for byte: structure, numbers, whitespace, and strings that hold
// nothing to mask. Numbers are never masked, so a phone number sent as a
// JSON number stays. MaskPayload applies MaskJSON to valid JSON and masks
// anything else as text; it is meant for the original bytes of dead-letter
// records, which are often not valid JSON.
//
// # Events
//
// DropPII removes personal data from a decoded stream.Event in place:
//
//   - free text, query and text: each detected item is masked; a value that
//     is nothing but one item (after trimming spaces) is dropped (set to "").
//   - categorical values, session_id, item_id, category, brand and
//     currency: dropped when they contain any detected item, since a masked
//     value would become a fake category shared by unrelated users.
//   - never touched: event_id, user_id and anonymous_id (identifiers;
//     masking them would merge users, pseudonymise them instead), type, ts,
//     schema, price, quantity and consent.
//
// Dropping can leave an event without a field its type requires (a view
// without item_id); DropPII runs after decoding, so callers decide what
// such an event contributes.
package privacy
