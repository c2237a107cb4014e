// Package segment evaluates declarative user segments: named rules over a
// user's features, model scores, score deciles and affinities, with
// hysteresis, a minimum dwell time and timers for rules that depend on the
// passing of time. It is the pure core a streaming scorer calls once per
// user update; it does no I/O except reading catalogue files.
//
// # Catalogue files
//
// A catalogue is a YAML file (default.yaml is embedded and returned by
// Default):
//
//	version: 1
//	segments:
//	  - name: high_value                 # [a-z0-9_]+, unique, at most 64 bytes
//	    description: "Top spenders"      # optional, for people
//	    rule: rfm_monetary >= 4 and rfm_frequency >= 3
//	    exit_rule: rfm_monetary < 3      # optional hysteresis
//	    min_dwell: 24h                   # optional: s, m, h, d, w or a Go duration
//	    time_relative: true              # optional, see NextCheck
//
// Parse and Load check everything before returning a Catalogue: the YAML
// shape, unknown or repeated keys, segment names, every rule's syntax, that
// every name a rule references exists (Names, by default the features of
// features.Defs, the model scores of ScoreNames and the affinity dimensions
// of features.Dims), and that the kinds of compared values agree. Errors are
// *Error values naming the file, line and column, the segment, the key and,
// inside a rule, the column within the rule, for example
//
//	segments.yaml:4:11: segment "high_value": rule: column 1: unknown name "rfm_monetery" (did you mean "rfm_monetary"?)
//
// When a rule is a single-line plain or quoted scalar the file position
// points at the offending character itself.
//
// # Rules
//
// The grammar, in EBNF:
//
//	rule       = or .
//	or         = and { "or" and } .
//	and        = unary { "and" unary } .
//	unary      = "not" unary | "(" or ")" | predicate .
//	predicate  = operand ( cmp operand
//	                     | "between" operand "and" operand
//	                     | [ "not" ] "in" operand ) .
//	cmp        = "<" | "<=" | ">" | ">=" | "==" | "!=" .
//	operand    = number | duration | string | name | "decile" "(" name ")" .
//	number     = [ "-" ] digits [ "." digits ] [ ( "e" | "E" ) [ "+" | "-" ] digits ] .
//	duration   = digits [ "." digits ] ( "s" | "m" | "h" | "d" | "w" ) .
//	string     = '"' { char | '\"' | '\\' } '"' | "'" { char | "\'" | '\\' } "'" .
//	name       = ( "a"…"z" | "_" ) { "a"…"z" | "0"…"9" | "_" } .
//
// and, or and not bind in that order from loosest to tightest; between
// includes both bounds. Names are:
//
//   - a value (Names.Values): a feature such as views_total or
//     days_since_last_seen, or a model score such as purchase_propensity: a
//     number;
//   - decile(score) for a score in Names.Deciles: the user's decile of that
//     score among all users, 1 (lowest tenth) to 10 (highest tenth), so
//     decile(purchase_propensity) >= 9 is the top fifth;
//   - top_<dim> for an affinity dimension (category, category_root, brand,
//     term): the name of the user's strongest entry, a string, compared with
//     == or != (top_category_root == "electronics");
//   - <dim>_top: the user's ranked top-K list (K is the scorer's, 5 by
//     default), tested with in or not in ("apple" in brand_top).
//
// A duration literal is a number of days: 7d is 7, 36h is 1.5, 30m is
// 0.0208…, 2w is 14. Only clocks (Names.Clocks: days_since_last_seen,
// days_since_last_purchase and tenure_days by default) may meet a duration,
// so that views_total > 7d is rejected; days_since_last_seen >= 7 and
// days_since_last_seen >= 7d mean the same. Comparing a string with a
// number, comparing two constants and an empty between range are errors.
// String comparisons are exact (case-sensitive); features keeps category,
// brand and term names in lower case.
//
// # Missing values
//
// A feature or score the Input does not have (a score not computed yet, an
// empty affinity list for top_<dim>, an unknown decile) makes every
// comparison that uses it Unknown, and Unknown propagates by Kleene's
// three-valued logic: false and unknown is false, true or unknown is true,
// not unknown is unknown. An empty <dim>_top list is known: "x" in it is
// false.
//
// # Membership, hysteresis and dwell
//
// Catalogue.Evaluate takes a user's Input, the previous Membership and the
// evaluation time (event time) and returns the next Membership and the
// Changes. For each segment:
//
//   - a non-member enters when rule is true and exit_rule, if there is
//     one, is not true (so overlapping rules cannot make it enter and leave
//     on alternate evaluations);
//   - a member with an exit_rule leaves when exit_rule is true; between the
//     two thresholds (rfm_monetary >= 4 to enter, < 3 to leave) it stays,
//     so a value oscillating around one threshold does not flap;
//   - a member without an exit_rule leaves when rule is not true;
//   - no member leaves before min_dwell has passed since it entered.
//
// A member of a segment the catalogue no longer defines leaves it, with a
// Reason saying so. Every Change carries a Reason: the deciding rule's
// text and the value of every name it references, for example
//
//	enter high_value at 2019-10-01T02:00:00Z: rule "rfm_monetary >= 4 and rfm_frequency >= 3" with rfm_monetary = 5, rfm_frequency = 3
//
// Evaluate is deterministic, never changes its arguments, and allocates
// nothing when nothing changes. A Membership encodes to a compact,
// canonical binary form (MarshalBinary: each segment takes its name plus
// about 8 bytes) for storage next to the user's profile.
//
// # Time-relative segments
//
// Some rules become true with no event at all: silent is
// days_since_last_seen >= 7d. For segments marked time_relative,
// Catalogue.NextCheck computes when the next membership change would happen
// if no event arrived: clocks grow by one per day, so each comparison of a
// clock with a value that does not grow flips at a known time (last_seen +
// 7d here); NextCheck evaluates the segment at each such time, in order,
// with the clocks advanced and all other inputs held, and returns the first
// at which the decision changes. It also returns when a min_dwell that
// holds back an exit ends, for every segment. The scorer sets a timer for
// that time and, when it fires, evaluates the profile as of that time.
// Decaying and windowed features (activity_7d, views_24h) are held
// constant in this projection; they are up to date whenever the segment is
// evaluated, at an event or at a timer. A clock below zero
// (days_since_last_purchase is -1 for a user who never bought) does not
// grow.
//
// # Deciles
//
// Deciles come from a Deciles provider. Sketches implements one with a
// bounded-memory Sketch per score (reservoir sampling; see Sketch for its
// error bounds); ProfileInput asks it for the decile of the user's score.
//
// # Hot reload
//
// A Watcher polls a catalogue file and swaps in each valid new version;
// an invalid edit is reported through OnError and the previous catalogue
// stays in force. Catalogues are immutable, so a scorer can keep using the
// one it loaded while a new one is swapped in. Memberships are keyed by
// segment name, so they survive reloads that keep the names.
package segment
