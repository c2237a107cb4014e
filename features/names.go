package features

// ID indexes a numeric feature in a Vector.
type ID int

// The numeric features, in Vector order. Names and definitions are in Defs;
// README.md's feature table is generated from the same text.
const (
	ViewsTotal ID = iota
	CartsTotal
	RemovesTotal
	PurchasesTotal
	UnitsTotal
	RevenueTotal
	SearchesTotal
	ReviewsTotal
	FirstSeen
	LastSeen
	LastPurchaseAt
	SessionsTotal
	DistinctItems
	Views1h
	Views24h
	Views7d
	Carts24h
	Purchases30d
	Revenue30d
	Activity1h
	Activity1d
	Activity7d
	CartSessions
	AbandonedCartSessions
	CartAbandonRate
	ViewToCartRate
	CartToPurchaseRate
	AvgPriceViewed
	AvgPriceBought
	PriceSensitivity
	DaysSinceLastSeen
	DaysSinceLastPurchase
	TenureDays
	RFMRecency
	RFMFrequency
	RFMMonetary
	RFMScore
	PurchaseDays
	RepeatTransactions
	RecencyWeeks
	AgeWeeks
	RepeatAvgValue
	NumFeatures // number of numeric features; not a feature
)

// Def describes one feature.
type Def struct {
	Name string
	Def  string
}

// Defs holds every numeric feature's name and definition, indexed by ID.
// Times are event time; "T" is the evaluation time (the profile's read time,
// or the largest event time replayed for --profiles-out).
var Defs = [NumFeatures]Def{
	ViewsTotal:            {"views_total", "number of `view` events"},
	CartsTotal:            {"carts_total", "number of `cart` events"},
	RemovesTotal:          {"removes_total", "number of `remove_from_cart` events"},
	PurchasesTotal:        {"purchases_total", "number of `purchase` events"},
	UnitsTotal:            {"units_total", "sum of `quantity` over purchases"},
	RevenueTotal:          {"revenue_total", "sum of price × quantity over purchases (exact: kept in integer millionths)"},
	SearchesTotal:         {"searches_total", "number of `search` events"},
	ReviewsTotal:          {"reviews_total", "number of `review` events"},
	FirstSeen:             {"first_seen", "smallest event time of any applied event, unix seconds"},
	LastSeen:              {"last_seen", "largest event time of any applied event, unix seconds"},
	LastPurchaseAt:        {"last_purchase_at", "largest event time of a purchase, unix seconds (0: never)"},
	SessionsTotal:         {"sessions_total", "sessions: a distinct `session_id` (an id idle for more than 24 h starts a new session); events without one form sessions split by 30 minutes of inactivity"},
	DistinctItems:         {"distinct_items", "distinct `item_id`s in view/cart/purchase/review events (exact up to 4096 per user, then saturates)"},
	Views1h:               {"views_1h", "views in the 60 one-minute buckets ending with T's bucket"},
	Views24h:              {"views_24h", "views in the 60 24-minute buckets ending with T's bucket"},
	Views7d:               {"views_7d", "views in the 60 168-minute buckets ending with T's bucket"},
	Carts24h:              {"carts_24h", "carts in the 60 24-minute buckets ending with T's bucket"},
	Purchases30d:          {"purchases_30d", "purchases in the 60 12-hour buckets ending with T's bucket"},
	Revenue30d:            {"revenue_30d", "revenue (price × quantity) in the 60 12-hour buckets ending with T's bucket"},
	Activity1h:            {"activity_1h", "Σ over events of 2^(−(T−t)/1h): activity decayed with a 1-hour half-life"},
	Activity1d:            {"activity_1d", "the same with a 1-day half-life"},
	Activity7d:            {"activity_7d", "the same with a 7-day half-life"},
	CartSessions:          {"cart_sessions", "sessions with at least one `cart` event"},
	AbandonedCartSessions: {"abandoned_cart_sessions", "sessions with a `cart` event and no `purchase`"},
	CartAbandonRate:       {"cart_abandon_rate", "abandoned_cart_sessions / cart_sessions (0 when no cart session)"},
	ViewToCartRate:        {"view_to_cart_rate", "min(1, carts_total / views_total) (0 when no view)"},
	CartToPurchaseRate:    {"cart_to_purchase_rate", "min(1, purchases_total / carts_total) (0 when no cart)"},
	AvgPriceViewed:        {"avg_price_viewed", "mean price over views that carry a price"},
	AvgPriceBought:        {"avg_price_bought", "revenue_total / units_total"},
	PriceSensitivity:      {"price_sensitivity", "clamp(1 − avg_price_bought / avg_price_viewed, −1, 1): positive when the user buys below what they browse (0 unless both exist)"},
	DaysSinceLastSeen:     {"days_since_last_seen", "(T − last_seen) / 1 day"},
	DaysSinceLastPurchase: {"days_since_last_purchase", "(T − last_purchase_at) / 1 day (−1: never purchased)"},
	TenureDays:            {"tenure_days", "(T − first_seen) / 1 day"},
	RFMRecency:            {"rfm_recency", "1–5 from days since last purchase, thresholds 1/7/30/90 days (0: never purchased)"},
	RFMFrequency:          {"rfm_frequency", "1–5 from purchases_total, thresholds 2/3/5/10 (0: none)"},
	RFMMonetary:           {"rfm_monetary", "1–5 from revenue_total, thresholds 50/200/500/1000 (0: none)"},
	RFMScore:              {"rfm_score", "100·R + 10·F + M"},
	PurchaseDays:          {"purchase_days", "distinct UTC days with a purchase (same-day purchases are one transaction)"},
	RepeatTransactions:    {"repeat_transactions", "purchase_days − 1 (BG/NBD frequency x; 0 without purchase)"},
	RecencyWeeks:          {"recency_weeks", "weeks from the first to the last purchase day (BG/NBD t_x)"},
	AgeWeeks:              {"age_weeks", "weeks from the first purchase day to T (BG/NBD T; 0 without purchase)"},
	RepeatAvgValue:        {"repeat_avg_value", "mean value of repeat transactions: (revenue − first-day revenue) / repeat_transactions (Gamma-Gamma input; 0 when none)"},
}

// Affinity dimensions: each keeps murmur3-hashed, decayed weights and reports
// its top-K names.
const (
	DimCategory     = "category"      // full dotted category path
	DimCategoryRoot = "category_root" // first segment of the category path
	DimBrand        = "brand"
	DimTerm         = "term" // lower-cased search-query tokens
)

// Dims lists the affinity dimensions in storage order.
var Dims = [...]string{DimCategory, DimCategoryRoot, DimBrand, DimTerm}

// AffinityWeight is the weight an event type adds to its affinities:
// view 1, cart 3, purchase 5 (× quantity), review 2, search 1 (terms).
const (
	weightView     = 1
	weightCart     = 3
	weightPurchase = 5
	weightReview   = 2
	weightSearch   = 1
)

var nameIndex = func() map[string]ID {
	m := make(map[string]ID, NumFeatures)
	for i, d := range Defs {
		m[d.Name] = ID(i)
	}
	return m
}()

// Lookup returns the ID of the named feature.
func Lookup(name string) (ID, bool) {
	id, ok := nameIndex[name]
	return id, ok
}

// Name returns the feature's name.
func (id ID) Name() string {
	if id < 0 || id >= NumFeatures {
		return ""
	}
	return Defs[id].Name
}
