package segment_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/streamprofile/streamprofile/sink/segment"
)

func TestRuleEval(t *testing.T) {
	base := in{}.with(
		"views_total", 10, "purchases_total", 2, "revenue_total", 250.5,
		"rfm_monetary", 4, "rfm_frequency", 3,
		"days_since_last_seen", 7.5, "days_since_last_purchase", -1, "tenure_days", 30,
		"avg_price_viewed", 100, "avg_price_bought", 80,
		"purchase_propensity", 0.42,
		"category_root", []string{"electronics", "appliances"},
		"brand", []string{"apple"},
		"purchase_propensity", decile(9),
	)
	T, F, U := segment.True, segment.False, segment.Unknown
	tests := []struct {
		rule string
		want segment.Truth
	}{
		// comparisons
		{"views_total > 9", T},
		{"views_total > 10", F},
		{"views_total >= 10", T},
		{"views_total < 10", F},
		{"views_total <= 10", T},
		{"views_total == 10", T},
		{"views_total != 10", F},
		{"10 < views_total", F},
		{"9 < views_total", T},
		{"revenue_total >= 250.5", T},
		{"revenue_total > 2.505e2", F},
		{"revenue_total < 2.6E+2", T},
		{"days_since_last_purchase == -1", T},
		{"avg_price_bought < avg_price_viewed", T},
		{"rfm_monetary >= 4 and rfm_frequency >= 3", T},
		{"rfm_monetary>=4 and(rfm_frequency>=4)", F},
		// logic and precedence: and binds tighter than or; not tightest
		{"views_total > 100 or views_total > 5 and purchases_total > 1", T},
		{"(views_total > 100 or views_total > 5) and purchases_total > 5", F},
		{"views_total > 100 or views_total > 5 and purchases_total > 5", F},
		{"not views_total > 100 and purchases_total == 2", T},
		{"not (views_total > 5 and purchases_total == 2)", F},
		{"not not views_total == 10", T},
		{"views_total > 1 and purchases_total > 1 and rfm_monetary > 1 and tenure_days > 1", T},
		{"views_total > 100 or purchases_total > 100 or tenure_days > 29", T},
		// between includes both bounds
		{"rfm_monetary between 1 and 4", T},
		{"rfm_monetary between 4 and 4", T},
		{"rfm_monetary between 4.5 and 5", F},
		{"rfm_monetary between 1 and 3 or views_total between 10 and 20", T},
		{"avg_price_bought between 0 and avg_price_viewed", T},
		// durations are days and meet clocks
		{"days_since_last_seen >= 7d", T},
		{"days_since_last_seen >= 7", T},
		{"days_since_last_seen >= 1w", T},
		{"days_since_last_seen < 181h", T}, // 7.5 days = 180h
		{"days_since_last_seen < 180h", F},
		{"days_since_last_seen > 180h", F},
		{"days_since_last_seen > 10800m", F},
		{"days_since_last_seen >= 648000s", T},
		{"days_since_last_seen between 7d and 8d", T},
		{"tenure_days > 4w", T},
		{"days_since_last_seen >= 7.5d", T},
		// affinities
		{`top_category_root == "electronics"`, T},
		{`top_category_root == 'electronics'`, T},
		{`"electronics" == top_category_root`, T},
		{`top_category_root != "electronics"`, F},
		{`top_category_root == "Electronics"`, F},
		{`"appliances" in category_root_top`, T},
		{`"apparel" in category_root_top`, F},
		{`"apparel" not in category_root_top`, T},
		{`top_brand in brand_top`, T},
		{`"samsung" in brand_top`, F},
		{`"x" in term_top`, F}, // empty list: known, false
		{`"x" not in term_top`, T},
		// deciles
		{"decile(purchase_propensity) >= 9", T},
		{"decile(purchase_propensity) == 10", F},
		{"decile( purchase_propensity ) between 8 and 9", T},
		// missing values are Unknown, combined by Kleene's logic
		{"churn_risk > 0.5", U},
		{"churn_risk <= 0.5", U},
		{"not churn_risk > 0.5", U},
		{"churn_risk > 0.5 and views_total > 100", F},
		{"churn_risk > 0.5 and views_total > 1", U},
		{"churn_risk > 0.5 or views_total > 1", T},
		{"churn_risk > 0.5 or views_total > 100", U},
		{"churn_risk between 0 and 1", U},
		{"views_total between 0 and churn_risk", U},
		{"decile(churn_risk) >= 9", U},
		{`top_term == "phone"`, U},
		{`top_term != "phone"`, U},
		{`top_term in brand_top`, U},
		// strings with escapes
		{`top_brand != "a\"b"`, T},
		{`top_brand != 'it\'s'`, T},
		{`top_brand != "back\\slash"`, T},
		// whitespace, including newlines from YAML block scalars
		{"views_total\n  >= 10\tand\r\npurchases_total == 2", T},
	}
	for _, tt := range tests {
		r := mustRule(t, tt.rule)
		if got := r.Eval(base); got != tt.want {
			t.Errorf("%q = %v, want %v (values %v)", tt.rule, got, tt.want, r.Values(base))
		}
		if r.String() != tt.rule {
			t.Errorf("String() = %q, want the source %q", r.String(), tt.rule)
		}
	}
}

func TestRuleEvalNaNIsMissing(t *testing.T) {
	r := mustRule(t, "purchase_propensity >= 0")
	x := in{}.with("purchase_propensity", nanValue())
	if got := r.Eval(x); got != segment.Unknown {
		t.Fatalf("NaN score: %v, want unknown", got)
	}
	if v := r.Values(x); !v[0].Missing {
		t.Fatalf("NaN score reported as %v, want missing", v[0])
	}
}

func TestRuleErrors(t *testing.T) {
	tests := []struct {
		rule string
		err  error
		col  int
		msg  string // substring of the message
	}{
		{"", segment.ErrSyntax, 1, "empty rule"},
		{"   ", segment.ErrSyntax, 1, "empty rule"},
		{"views_totl > 1", segment.ErrUnknownName, 1, `unknown name "views_totl" (did you mean "views_total"?)`},
		{"views_total > 1 and rfm_monetery >= 4", segment.ErrUnknownName, 21, `did you mean "rfm_monetary"?`},
		{"zzz > 1", segment.ErrUnknownName, 1, `unknown name "zzz"`},
		{"views_total", segment.ErrSyntax, 12, "unexpected end of rule, expected a comparison"},
		{"views_total >", segment.ErrSyntax, 14, "unexpected end of rule, expected a name, number or string"},
		{"views_total = 1", segment.ErrSyntax, 13, "use == to test equality"},
		{"views_total ! 1", segment.ErrSyntax, 13, "use != to test inequality"},
		{"views_total => 1", segment.ErrSyntax, 13, "use == to test equality"},
		{"views_total > 1 and", segment.ErrSyntax, 20, "unexpected end of rule"},
		{"views_total > 1 views_total < 2", segment.ErrSyntax, 17, `unexpected name "views_total", expected and, or or the end`},
		{"(views_total > 1", segment.ErrSyntax, 1, "'(' is never closed"},
		{"views_total > 1)", segment.ErrSyntax, 16, "unmatched ')'"},
		{"(views_total > 1 purchases_total", segment.ErrSyntax, 18, "expected and, or or ')'"},
		{"()", segment.ErrSyntax, 2, `unexpected ")"`},
		{"views_total > 1 && carts_total > 1", segment.ErrSyntax, 17, "unexpected character '&'"},
		{"views_total > .5", segment.ErrSyntax, 15, "0.5, not .5"},
		{"views_total > 1.", segment.ErrSyntax, 15, "a digit must follow '.'"},
		{"views_total > 1e999", segment.ErrSyntax, 15, "out of range"},
		{"views_total > 7days", segment.ErrSyntax, 16, `invalid suffix "days"`},
		{"views_total > 1x", segment.ErrSyntax, 16, `invalid suffix "x"`},
		{"views_total > 1e3d", segment.ErrSyntax, 18, `invalid suffix "d"`},
		{"views_total > - 1", segment.ErrSyntax, 15, "no arithmetic"},
		{"views_total > views_total - 1", segment.ErrSyntax, 27, "no arithmetic"},
		{"days_since_last_seen > -7d", segment.ErrSyntax, 24, "negative duration"},
		{`top_brand == "apple`, segment.ErrSyntax, 14, "unterminated string"},
		{"top_brand == \"ap\nple\"", segment.ErrSyntax, 14, "unterminated string"},
		{`top_brand == "a\nb"`, segment.ErrSyntax, 16, `unknown escape`},
		{"Views_total > 1", segment.ErrSyntax, 1, "upper-case"},
		{"views_total > 1 AND carts_total > 1", segment.ErrSyntax, 17, "upper-case"},
		{"views_total > 1 and and", segment.ErrSyntax, 21, `unexpected keyword "and"`},
		{"views_total between 1", segment.ErrSyntax, 22, "expected and in between"},
		{"views_total between 1 or 2", segment.ErrSyntax, 23, "expected and in between"},
		{"views_total not between 1 and 2", segment.ErrSyntax, 17, "expected in after not"},
		{"décile > 1", segment.ErrSyntax, 2, "unexpected character 'é'"},
		{"views_total > 1 and \xff", segment.ErrSyntax, 21, "invalid UTF-8"},
		{"decile purchase_propensity > 1", segment.ErrSyntax, 8, "expected '(' after decile"},
		{"decile(purchase_propensity > 1", segment.ErrSyntax, 28, "expected ')' after decile(purchase_propensity"},
		{"decile() > 1", segment.ErrSyntax, 8, "expected a score name"},
		{"decile(views_total) > 1", segment.ErrType, 8, "views_total is not a ranked score"},
		{"decile(purchase_propensty) > 1", segment.ErrUnknownName, 8, `did you mean "purchase_propensity"?`},
		// types
		{`views_total == "10"`, segment.ErrType, 13, `cannot compare views_total (a number) with "10" (a string)`},
		{`top_brand > "a"`, segment.ErrType, 11, "strings can only be compared with == or !="},
		{`top_brand == 1`, segment.ErrType, 11, "cannot compare"},
		{`"a" == "b"`, segment.ErrType, 1, "compares two constants"},
		{`1 < 2`, segment.ErrType, 1, "compares two constants"},
		{`brand_top == "apple"`, segment.ErrType, 1, "brand_top is a list"},
		{`brand_top`, segment.ErrType, 1, "brand_top is a list"},
		{`top_brand`, segment.ErrSyntax, 10, "expected == or != or in after top_brand"},
		{`views_total in brand_top`, segment.ErrType, 1, "only a string can be tested with in"},
		{`"apple" in top_brand`, segment.ErrType, 12, "not a list"},
		{`"apple" in "apple"`, segment.ErrType, 12, "not a list"},
		{`top_brand between 1 and 2`, segment.ErrType, 1, "between needs numbers"},
		{`views_total between 1 and "2"`, segment.ErrType, 27, "between needs numbers"},
		{`1 between 0 and views_total`, segment.ErrType, 1, "compares a constant"},
		{`views_total between 5 and 1`, segment.ErrType, 13, "empty range: 5 is greater than 1"},
		{`views_total > 7d`, segment.ErrType, 15, "duration 7d compared with views_total, which is not measured in days"},
		{`7d < views_total`, segment.ErrType, 1, "duration 7d compared with views_total"},
		{`days_since_last_seen > 7d and revenue_total between 1d and 2`, segment.ErrType, 53, "duration 1d compared with revenue_total"},
		{`decile(churn_risk) > 1d`, segment.ErrType, 22, "duration 1d compared with decile(churn_risk)"},
		// limits
		{strings.Repeat("(", 40) + "views_total > 1" + strings.Repeat(")", 40), segment.ErrTooLarge, 33, "nested more than 32 deep"},
		{strings.Repeat("not ", 40) + "views_total > 1", segment.ErrTooLarge, 129, "nested more than 32 deep"},
		{"views_total > 1" + strings.Repeat(" or views_total > 1", 300), segment.ErrTooLarge, 0, "more than 4096"},
	}
	for _, tt := range tests {
		_, err := segment.ParseRule(tt.rule, segment.Names{})
		if err == nil {
			t.Errorf("%q: no error, want %v", tt.rule, tt.err)
			continue
		}
		e := asError(t, err)
		if !errors.Is(err, tt.err) || e.RuleColumn != tt.col || !strings.Contains(e.Msg, tt.msg) {
			t.Errorf("%q:\n got %v (column %d, %v)\nwant column %d, %v, message containing %q", tt.rule, err, e.RuleColumn, e.Err, tt.col, tt.err, tt.msg)
		}
		if e.File != "" || e.Line != 0 {
			t.Errorf("%q: ParseRule error has a file position: %+v", tt.rule, e)
		}
	}
}

func TestRuleRefs(t *testing.T) {
	r := mustRule(t, `views_total > 1 and (decile(churn_risk) >= 9 or views_total < 5) and top_brand == "x" and "y" in term_top and days_since_last_seen between 1 and tenure_days`)
	want := []string{"views_total", "decile(churn_risk)", "top_brand", "term_top", "days_since_last_seen", "tenure_days"}
	if got := r.Refs(); !slices.Equal(got, want) {
		t.Fatalf("Refs = %q, want %q", got, want)
	}
	if !r.UsesClock() {
		t.Fatal("UsesClock = false for a rule naming days_since_last_seen")
	}
	if mustRule(t, "views_total > 1").UsesClock() {
		t.Fatal("UsesClock = true for views_total")
	}
	x := in{}.with("views_total", 3, "churn_risk", decile(10), "brand", []string{"x", "z"}, "days_since_last_seen", 2.5)
	var got []string
	for _, v := range r.Values(x) {
		got = append(got, v.String())
	}
	wantVals := []string{"views_total = 3", "decile(churn_risk) = 10", `top_brand = "x"`, "term_top = []", "days_since_last_seen = 2.5", "tenure_days = missing"}
	if !slices.Equal(got, wantVals) {
		t.Fatalf("Values = %q, want %q", got, wantVals)
	}
}

func TestCustomNames(t *testing.T) {
	names := segment.Names{Values: []string{"score", "age_days"}, Deciles: []string{"score"}, Dims: []string{"color"}, Clocks: []string{"age_days"}}
	r, err := segment.ParseRule(`score > 1 and decile(score) > 5 and top_color == "red" and "blue" in color_top and age_days < 2d`, names)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Eval(in{}.with("score", 2, "score", decile(6), "color", []string{"red", "blue"}, "age_days", 1)); got != segment.True {
		t.Fatalf("Eval = %v", got)
	}
	if _, err := segment.ParseRule("views_total > 1", names); !errors.Is(err, segment.ErrUnknownName) {
		t.Fatalf("views_total with custom names: %v, want ErrUnknownName", err)
	}
	if _, err := segment.ParseRule("score > 1d", names); !errors.Is(err, segment.ErrType) {
		t.Fatalf("duration against a non-clock: %v, want ErrType", err)
	}
	bad := []segment.Names{
		{Values: []string{"Score"}},
		{Values: []string{"and"}},
		{Values: []string{"1x"}},
		{Values: []string{"x", "x"}},
		{Values: []string{"top_color"}, Dims: []string{"color"}},
		{Values: []string{"color_top"}, Dims: []string{"color"}},
		{Values: []string{"x"}, Clocks: []string{"y"}},
		{Values: []string{"x"}, Dims: []string{"a-b"}},
		{Values: []string{"x"}, Deciles: []string{"x", "x"}},
		{Values: []string{strings.Repeat("x", segment.MaxNameLen+1)}},
	}
	for _, n := range bad {
		if err := n.Validate(); !errors.Is(err, segment.ErrNames) {
			t.Errorf("Validate(%+v) = %v, want ErrNames", n, err)
		}
		if _, err := segment.ParseRule("x > 1", n); !errors.Is(err, segment.ErrNames) {
			t.Errorf("ParseRule with %+v: %v, want ErrNames", n, err)
		}
	}
	if err := segment.DefaultNames().Validate(); err != nil {
		t.Fatalf("DefaultNames invalid: %v", err)
	}
}

func TestDefaultNames(t *testing.T) {
	n := segment.DefaultNames()
	for _, want := range []string{"views_total", "rfm_monetary", "days_since_last_seen", "purchase_propensity", "clv_90d", "p_alive"} {
		if !slices.Contains(n.Values, want) {
			t.Errorf("DefaultNames().Values lacks %q", want)
		}
	}
	if want := []string{"days_since_last_seen", "days_since_last_purchase", "tenure_days"}; !slices.Equal(n.Clocks, want) {
		t.Errorf("Clocks = %q, want %q", n.Clocks, want)
	}
	if !slices.Equal(n.Deciles, segment.ScoreNames()) {
		t.Errorf("Deciles = %q, want the score names", n.Deciles)
	}
	if want := []string{"category", "category_root", "brand", "term"}; !slices.Equal(n.Dims, want) {
		t.Errorf("Dims = %q, want %q", n.Dims, want)
	}
}
