package observability

import (
	"net/netip"
	"sort"
	"strings"
)

// Redacted replaces every masked value.
const Redacted = "[REDACTED]"

// RedactString returns s with every e-mail address and IP address (v4 or v6)
// in it replaced by Redacted. It is what the redacting log handler applies to
// messages and string values; use it for other text that leaves the process
// (error strings in responses, span status messages).
//
// Detection errs on the side of masking: anything of the form
// local@domain.tld is an e-mail address, any dotted quad of numbers up to
// 255 is an IPv4 address (so a four-part version number is masked too), and
// a run of hex digits and colons that net/netip parses is an IPv6 address.
func RedactString(s string) string {
	// Masking can expose an address that overlapped a masked one
	// ("a@b.cd::1" → "[REDACTED]::1"), so repeat until nothing is found.
	// Every pass replaces unmasked text, which is finite, so this ends.
	for {
		spans := piiSpans(s)
		if len(spans) == 0 {
			return s
		}
		s = mask(s, spans)
	}
}

// mask replaces the spans of s with Redacted.
func mask(s string, spans [][2]int) string {
	var b strings.Builder
	b.Grow(len(s))
	last := 0
	for _, sp := range spans {
		b.WriteString(s[last:sp[0]])
		b.WriteString(Redacted)
		last = sp[1]
	}
	b.WriteString(s[last:])
	return b.String()
}

// piiSpans returns the sorted, disjoint [start, end) byte ranges of s that
// hold an e-mail or IP address.
func piiSpans(s string) [][2]int {
	if !strings.ContainsAny(s, "@.:") {
		return nil // fast path: no address without one of these
	}
	var spans [][2]int
	spans = appendEmails(spans, s)
	spans = appendIPs(spans, s)
	if len(spans) < 2 {
		return spans
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i][0] < spans[j][0] })
	out := spans[:1]
	for _, sp := range spans[1:] {
		if top := &out[len(out)-1]; sp[0] <= top[1] {
			top[1] = max(top[1], sp[1])
		} else {
			out = append(out, sp)
		}
	}
	return out
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isLocalPart(c byte) bool {
	return isAlnum(c) || strings.IndexByte(".!#$%&'*+/=?^_`{|}~-", c) >= 0
}

func isDomain(c byte) bool { return isAlnum(c) || c == '.' || c == '-' }

// appendEmails finds local@domain.tld around each '@'.
func appendEmails(spans [][2]int, s string) [][2]int {
	for i := 0; i < len(s); i++ {
		if s[i] != '@' {
			continue
		}
		start := i
		for start > 0 && isLocalPart(s[start-1]) {
			start--
		}
		end := i + 1
		for end < len(s) && isDomain(s[end]) {
			end++
		}
		for end > i+1 && (s[end-1] == '.' || s[end-1] == '-') {
			end--
		}
		domain := s[i+1 : end]
		dot := strings.LastIndexByte(domain, '.')
		if start == i || dot <= 0 || dot == len(domain)-1 {
			continue
		}
		spans = append(spans, [2]int{start, end})
		i = end - 1
	}
	return spans
}

func isDigitDot(c byte) bool { return c >= '0' && c <= '9' || c == '.' }

func isHexColonDot(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == ':' || c == '.'
}

// appendIPs finds IPv4 addresses (runs of digits and dots) and IPv6
// addresses (runs of hex digits, colons and dots with at least two colons,
// not glued to other letters or digits).
func appendIPs(spans [][2]int, s string) [][2]int {
	for i := 0; i < len(s); {
		if !isDigitDot(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isDigitDot(s[j]) {
			j++
		}
		a, b := i, j
		for a < b && s[a] == '.' {
			a++
		}
		for b > a && s[b-1] == '.' {
			b--
		}
		if b-a >= 7 {
			if ip, err := netip.ParseAddr(s[a:b]); err == nil && ip.Is4() {
				spans = append(spans, [2]int{a, b})
			}
		}
		i = j
	}
	for i := 0; i < len(s); {
		if !isHexColonDot(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isHexColonDot(s[j]) {
			j++
		}
		// A run glued to other letters or digits ("std::vector") is a
		// word, not an address.
		glued := i > 0 && isAlnum(s[i-1]) || j < len(s) && isAlnum(s[j])
		if a, b, ok := ipv6In(s[i:j]); ok && !glued {
			spans = append(spans, [2]int{i + a, i + b})
		}
		i = j
	}
	return spans
}

// ipv6In reports the IPv6 address that run (hex digits, colons, dots) is,
// allowing for one stray trailing colon or dot ("fe80::1: refused").
func ipv6In(run string) (a, b int, ok bool) {
	if strings.Count(run, ":") < 2 {
		return 0, 0, false
	}
	b = len(run)
	for range 2 {
		cand := run[:b]
		if cand != "::" {
			if ip, err := netip.ParseAddr(cand); err == nil && ip.Is6() {
				return 0, b, true
			}
		}
		if b == 0 || (run[b-1] != ':' && run[b-1] != '.') {
			break
		}
		b--
	}
	return 0, 0, false
}
