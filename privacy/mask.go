package privacy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Kind is a set of kinds of personal data.
type Kind uint8

// The kinds of personal data a Masker detects.
const (
	KindEmail Kind = 1 << iota // e-mail address
	KindPhone                  // phone number
	KindIP                     // IPv4 or IPv6 address

	// AllKinds is every kind.
	AllKinds = KindEmail | KindPhone | KindIP
)

var kindNames = [...]struct {
	k    Kind
	name string
}{{KindEmail, "email"}, {KindPhone, "phone"}, {KindIP, "ip"}}

// String names the kinds in k, joined by '|' ("email|ip"); "none" for 0.
func (k Kind) String() string {
	if k == 0 {
		return "none"
	}
	var b strings.Builder
	for _, kn := range kindNames {
		if k&kn.k != 0 {
			if b.Len() > 0 {
				b.WriteByte('|')
			}
			b.WriteString(kn.name)
		}
	}
	if rest := k &^ AllKinds; rest != 0 {
		if b.Len() > 0 {
			b.WriteByte('|')
		}
		fmt.Fprintf(&b, "0x%x", uint8(rest))
	}
	return b.String()
}

// The placeholders that replace detected items.
const (
	PlaceholderEmail = "[redacted:email]"
	PlaceholderPhone = "[redacted:phone]"
	PlaceholderIP    = "[redacted:ip]"
)

func placeholder(k Kind) string {
	switch k {
	case KindEmail:
		return PlaceholderEmail
	case KindPhone:
		return PlaceholderPhone
	}
	return PlaceholderIP
}

const (
	// maxPhoneDigits is the E.164 maximum.
	maxPhoneDigits = 15
	// maxPhoneGroups is the most digit groups of a phone number.
	maxPhoneGroups = 8
)

// MaskerConfig configures a Masker.
type MaskerConfig struct {
	// Kinds selects the kinds of personal data detected and masked.
	// Default (0) AllKinds.
	Kinds Kind
	// MinPhoneDigits is the fewest digits a phone number has, 5 to 15.
	// Default (0) 7.
	MinPhoneDigits int
}

func (c MaskerConfig) withDefaults() MaskerConfig {
	if c.Kinds == 0 {
		c.Kinds = AllKinds
	}
	if c.MinPhoneDigits == 0 {
		c.MinPhoneDigits = 7
	}
	return c
}

// Validate reports invalid settings.
func (c MaskerConfig) Validate() error {
	c = c.withDefaults()
	if c.Kinds&^AllKinds != 0 {
		return fmt.Errorf("%w: unknown kinds %s", ErrInvalidConfig, c.Kinds&^AllKinds)
	}
	if c.MinPhoneDigits < 5 || c.MinPhoneDigits > maxPhoneDigits {
		return fmt.Errorf("%w: MinPhoneDigits %d outside [5, %d]", ErrInvalidConfig, c.MinPhoneDigits, maxPhoneDigits)
	}
	return nil
}

// Masker detects and masks personal data (see the package documentation for
// what it detects). It is safe for concurrent use.
type Masker struct {
	kinds    Kind
	minPhone int
}

// NewMasker returns a Masker configured by cfg.
func NewMasker(cfg MaskerConfig) (*Masker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Masker{kinds: cfg.Kinds, minPhone: cfg.MinPhoneDigits}, nil
}

// MaskString returns s with every detected item replaced by its
// placeholder, and whether anything was replaced. Without a match it
// returns s itself and allocates nothing.
func (m *Masker) MaskString(s string) (string, bool) {
	out, k := m.mask(s)
	return out, k != 0
}

// Detect returns the kinds of personal data in s (0 when none).
func (m *Masker) Detect(s string) Kind {
	_, k := m.mask(s)
	return k
}

// mask masks s to a fixed point: replacing an item can expose another
// ("[redacted:ip]-555-123-4567" was glued to the address before), so it
// repeats until nothing is found. It ends because detected items never
// overlap a placeholder, so each pass shrinks the text outside
// placeholders.
func (m *Masker) mask(s string) (string, Kind) {
	var found Kind
	var buf [8]span
	for {
		d := precheck(m, s)
		if d == 0 {
			break
		}
		spans := m.detect(s, d, buf[:0])
		if len(spans) == 0 {
			break
		}
		var b strings.Builder
		b.Grow(len(s) + 8*len(spans))
		last := 0
		for _, sp := range spans {
			b.WriteString(s[last:sp.start])
			b.WriteString(placeholder(sp.kind))
			last = sp.end
			found |= sp.kind
		}
		b.WriteString(s[last:])
		s = b.String()
	}
	return s, found
}

// wholeItem reports whether s, trimmed of spaces, is exactly one detected
// item.
func (m *Masker) wholeItem(s string) bool {
	t := strings.TrimSpace(s)
	d := precheck(m, t)
	if d == 0 {
		return false
	}
	var buf [8]span
	spans := m.detect(t, d, buf[:0])
	return len(spans) == 1 && spans[0].start == 0 && spans[0].end == len(t)
}

// The detectors a pre-check can select.
const (
	detEmail = 1 << iota
	detPhone
	detIPv4
	detIPv6
)

// precheck is the cheap pre-check: it returns the detectors that can find
// something in s (0 for most text), from one pass over its bytes.
func precheck[T string | []byte](m *Masker, s T) uint8 {
	var digits, colons, dots int
	at := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c-'0' < 10 {
			digits++
			continue
		}
		switch c {
		case '@':
			at = true
		case ':':
			colons++
		case '.':
			dots++
		}
	}
	var d uint8
	if m.kinds&KindEmail != 0 && at {
		d |= detEmail
	}
	if m.kinds&KindPhone != 0 && digits >= m.minPhone {
		d |= detPhone
	}
	if m.kinds&KindIP != 0 {
		if digits >= 4 && dots >= 3 {
			d |= detIPv4
		}
		if colons >= 2 {
			d |= detIPv6
		}
	}
	return d
}

func (m *Masker) mayContain(s string) bool { return precheck(m, s) != 0 }

// span is a detected item, s[start:end].
type span struct {
	start, end int
	kind       Kind
}

// detect returns the disjoint items of s in order, running the detectors
// in d (from precheck). Where detectors overlap,
// e-mail wins over IP, and IP over phone.
func (m *Masker) detect(s string, d uint8, spans []span) []span {
	if d&detEmail != 0 {
		spans = appendEmails(spans, s)
	}
	if d&detIPv6 != 0 {
		spans = appendIPv6(spans, s)
	}
	if d&detIPv4 != 0 {
		spans = appendIPv4(spans, s)
	}
	if d&detPhone != 0 {
		spans = m.appendPhones(spans, s)
	}
	if len(spans) > 1 {
		slices.SortFunc(spans, func(a, b span) int { return a.start - b.start })
	}
	return spans
}

func overlaps(spans []span, start, end int) bool {
	for _, sp := range spans {
		if start < sp.end && sp.start < end {
			return true
		}
	}
	return false
}

func isDigit(c byte) bool { return c-'0' < 10 }

func isAlnum(c byte) bool {
	return c-'0' < 10 || c|0x20-'a' < 26
}

// isWord: letters, digits and '_'.
func isWord(c byte) bool { return isAlnum(c) || c == '_' }

func isHex(c byte) bool { return c-'0' < 10 || c|0x20-'a' < 6 }

func isLocal(c byte) bool {
	return isAlnum(c) || strings.IndexByte(".!#$%&'*+/=?^_`{|}~-", c) >= 0
}

func isDomain(c byte) bool { return isAlnum(c) || c == '.' || c == '-' }

// appendEmails finds local@domain.tld around each '@'.
func appendEmails(spans []span, s string) []span {
	from := 0 // s[:from] belongs to an earlier address
	for i := 0; i < len(s); i++ {
		if s[i] != '@' {
			continue
		}
		start := i
		for start > from && isLocal(s[start-1]) {
			start--
		}
		for start < i && s[start] == '.' {
			start++
		}
		end := i + 1
		for end < len(s) && isDomain(s[end]) {
			end++
		}
		for end > i+1 && (s[end-1] == '.' || s[end-1] == '-') {
			end--
		}
		if start == i || !validDomain(s[i+1:end]) {
			continue
		}
		spans = append(spans, span{start, end, KindEmail})
		from = end
		i = end - 1
	}
	return spans
}

// validDomain: at least two non-empty labels, the last of two or more
// letters.
func validDomain(d string) bool {
	dot := strings.LastIndexByte(d, '.')
	if dot <= 0 || len(d)-dot-1 < 2 || strings.Contains(d, "..") || d[0] == '.' {
		return false
	}
	for i := dot + 1; i < len(d); i++ {
		if d[i]|0x20-'a' >= 26 {
			return false
		}
	}
	return true
}

// appendIPv4 finds dotted quads of numbers up to 255 that are not glued to
// a word or to a further dot.
func appendIPv4(spans []span, s string) []span {
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && (isDigit(s[j]) || s[j] == '.') {
			j++
		}
		e := j
		for e > i && s[e-1] == '.' {
			e--
		}
		glued := i > 0 && (isWord(s[i-1]) || s[i-1] == '.' && i > 1 && isAlnum(s[i-2])) ||
			e < len(s) && (isWord(s[e]) || s[e] == '.' && e+1 < len(s) && isAlnum(s[e+1]))
		if !glued && isIPv4(s[i:e]) && !overlaps(spans, i, e) {
			spans = append(spans, span{i, e, KindIP})
		}
		i = j
	}
	return spans
}

// isIPv4 accepts four dot-separated numbers of 1 to 3 digits up to 255
// (leading zeros allowed: "010.000.000.001" is masked too).
func isIPv4(s string) bool {
	parts := 0
	for len(s) > 0 {
		n, v := 0, 0
		for n < len(s) && isDigit(s[n]) {
			v = v*10 + int(s[n]-'0')
			n++
		}
		if n == 0 || n > 3 || v > 255 {
			return false
		}
		parts++
		s = s[n:]
		if len(s) > 0 {
			if s[0] != '.' || len(s) == 1 {
				return false
			}
			s = s[1:]
		}
	}
	return parts == 4
}

func isHexColonDot(c byte) bool { return isHex(c) || c == ':' || c == '.' }

// appendIPv6 finds runs of hex digits, colons and dots, with at least two
// colons and one hex digit, not glued to a word, that net/netip parses as
// IPv6, allowing one stray trailing colon or dot.
func appendIPv6(spans []span, s string) []span {
	for i := 0; i < len(s); {
		if !isHexColonDot(s[i]) {
			i++
			continue
		}
		j := i
		colons, hex := 0, false
		for j < len(s) && isHexColonDot(s[j]) {
			switch c := s[j]; {
			case c == ':':
				colons++
			case c != '.':
				hex = true
			}
			j++
		}
		if colons >= 2 && hex && !(i > 0 && isWord(s[i-1])) && !(j < len(s) && isWord(s[j])) &&
			ipv6Shape(s[i:j], colons) {
			for e := j; e > i; e-- {
				if ip, err := netip.ParseAddr(s[i:e]); err == nil && ip.Is6() {
					if !overlaps(spans, i, e) {
						spans = append(spans, span{i, e, KindIP})
					}
					break
				}
				if e < j || s[e-1] != ':' && s[e-1] != '.' {
					break // only one stray trailing character is dropped
				}
			}
		}
		i = j
	}
	return spans
}

// ipv6Shape is a cheap filter before netip.ParseAddr (whose errors
// allocate): an IPv6 address has "::", or seven colons, or six and an
// embedded IPv4 address, and no group of more than four hex digits.
func ipv6Shape(run string, colons int) bool {
	if !strings.Contains(run, "::") && colons < 7 && !(colons == 6 && strings.IndexByte(run, '.') >= 0) {
		return false
	}
	g := 0
	for i := 0; i < len(run); i++ {
		switch run[i] {
		case ':', '.':
			g = 0
		default:
			if g++; g > 4 {
				return false
			}
		}
	}
	return true
}

// phoneRun is a candidate phone number: digit groups joined by single
// separators (' ', '-', '.') or parentheses, optionally after '+'.
type phoneRun struct {
	end    int // end of the last group (or its ')')
	plus   bool
	paren  bool // parentheses were used
	open   bool // a '(' was not closed
	groups int
	digits int
	// respan is the start of the first group after a space, where a
	// rejected run is scanned again: "1.2.3.4 555-123-4567" holds a phone
	// number after a space. 0 when there is none.
	respan int
	g      [maxPhoneGroups][2]int // offsets of the first groups
	seps   uint8                  // separators used: sepSpace|sepDash|sepDot
}

const (
	sepSpace = 1 << iota
	sepDash
	sepDot
)

func parsePhone(s string, i int) phoneRun {
	var p phoneRun
	n := len(s)
	pos := i
	if s[pos] == '+' {
		p.plus = true
		pos++
	}
	p.end = i
	for {
		if pos < n && s[pos] == '(' && !p.open {
			p.open, p.paren = true, true
			pos++
		}
		st := pos
		for pos < n && isDigit(s[pos]) {
			pos++
		}
		if pos == st {
			break
		}
		if p.groups < maxPhoneGroups {
			p.g[p.groups] = [2]int{st, pos}
		}
		p.groups++
		p.digits += pos - st
		if p.open {
			if pos == n || s[pos] != ')' {
				p.end = pos
				break // "(06 12…": the parenthesis is not part of a number
			}
			p.open = false
			pos++
		}
		p.end = pos
		q := pos
		var sep uint8
		if q < n {
			switch s[q] {
			case ' ':
				sep = sepSpace
			case '-':
				sep = sepDash
			case '.':
				sep = sepDot
			}
		}
		if sep != 0 {
			q++
		}
		if q < n && (isDigit(s[q]) || s[q] == '(' && !p.open && q+1 < n && isDigit(s[q+1])) {
			if sep == 0 && s[q] == '(' {
				break // "123(456" is not a phone-number shape
			}
			p.seps |= sep
			if sep == sepSpace && p.respan == 0 {
				p.respan = q
			}
			pos = q
			continue
		}
		break
	}
	return p
}

func (p *phoneRun) group(s string, k int) string { return s[p.g[k][0]:p.g[k][1]] }

// dateEnd returns the end of a leading date (YYYY-MM-DD, DD.MM.YYYY and the
// like, any separator), or 0.
func (p *phoneRun) dateEnd(s string) int {
	if p.plus || p.paren || p.groups < 3 {
		return 0
	}
	a, b, c := p.group(s, 0), p.group(s, 1), p.group(s, 2)
	num := func(x string) int {
		v := 0
		for i := 0; i < len(x); i++ {
			v = v*10 + int(x[i]-'0')
		}
		return v
	}
	day := func(x string) bool { v := num(x); return len(x) <= 2 && v >= 1 && v <= 31 }
	month := func(x string) bool { v := num(x); return len(x) <= 2 && v >= 1 && v <= 12 }
	switch {
	case len(a) == 4 && month(b) && day(c), // 2019-10-01
		len(c) == 4 && (day(a) && month(b) || month(a) && day(b)): // 01.10.2019, 10/01/2019
		return p.g[2][1]
	}
	return 0
}

func (m *Masker) phoneOK(s string, p *phoneRun) bool {
	if p.open || p.digits < m.minPhone || p.digits > maxPhoneDigits || p.groups > maxPhoneGroups {
		return false
	}
	if p.groups == 2 && p.seps == sepDot && !p.paren {
		return false // a decimal number
	}
	if p.plus {
		return true
	}
	if p.groups < 2 {
		return false // a plain number: an id, a timestamp
	}
	if p.paren {
		return true
	}
	if p.seps&sepDot != 0 && p.seps != sepDot {
		return false // dots mixed with others: "35.79 541312140" is two numbers
	}
	if p.groups == 2 {
		a, b := p.group(s, 0), p.group(s, 1)
		return len(a) >= 2 && a[0] == '0' || // trunk prefix: 030 1234567
			len(a) == 3 && len(b) == 4 && a[0] >= '2' // US local: 555-1234
	}
	thousands := len(p.group(s, 0)) <= 3
	for k := 1; k < p.groups && thousands; k++ {
		thousands = len(p.group(s, k)) == 3
	}
	if thousands && (p.seps == sepDot || p.seps == sepSpace) {
		return false // 1.234.567, 1 234 567
	}
	if p.seps == sepDot {
		for k := 0; k < p.groups; k++ {
			if len(p.group(s, k)) < 2 {
				return false // a version: 10.0.19041
			}
		}
	}
	return true
}

// appendPhones finds phone numbers not glued to a word.
func (m *Masker) appendPhones(spans []span, s string) []span {
	n := len(s)
	for i := 0; i < n; {
		c := s[i]
		if !(isDigit(c) || (c == '+' || c == '(') && i+1 < n && isDigit(s[i+1])) {
			i++
			continue
		}
		p := parsePhone(s, i)
		if p.groups == 0 || p.open && s[i] == '(' {
			i++ // scan again from the digit after '('
			continue
		}
		if d := p.dateEnd(s); d > 0 {
			i = d // skip the date, look at what follows it
			continue
		}
		gluedLeft := i > 0 && (isWord(s[i-1]) || strings.IndexByte("-./+", s[i-1]) >= 0 && i > 1 && isAlnum(s[i-2]))
		e := p.end
		gluedRight := e < n && (isWord(s[e]) || strings.IndexByte("-./:@+", s[e]) >= 0 && e+1 < n && isAlnum(s[e+1]))
		if !gluedLeft && !gluedRight && m.phoneOK(s, &p) && !overlaps(spans, i, e) {
			spans = append(spans, span{i, e, KindPhone})
			i = e
			continue
		}
		if p.respan > i {
			i = p.respan
			continue
		}
		i = max(e, i+1)
	}
	return spans
}
