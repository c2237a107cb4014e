package scorer

import "strings"

// labels are readable names of the network's inputs (features.Defs names,
// the derived inputs of model/inputs and the token fields), for
// explanations shown to people. Explanations never list a derived input
// (its effect is the summary features'), but a label for every input
// keeps Label total.
var labels = map[string]string{
	"views_total":                  "product views (all time)",
	"carts_total":                  "add-to-carts (all time)",
	"removes_total":                "removals from cart (all time)",
	"purchases_total":              "purchases (all time)",
	"units_total":                  "units bought (all time)",
	"revenue_total":                "money spent (all time)",
	"searches_total":               "searches (all time)",
	"reviews_total":                "reviews written",
	"first_seen":                   "first visit",
	"last_seen":                    "last visit",
	"last_purchase_at":             "last purchase",
	"sessions_total":               "sessions",
	"distinct_items":               "different products looked at",
	"views_1h":                     "views in the last hour",
	"views_24h":                    "views in the last 24 hours",
	"views_7d":                     "views in the last 7 days",
	"carts_24h":                    "add-to-carts in the last 24 hours",
	"purchases_30d":                "purchases in the last 30 days",
	"revenue_30d":                  "money spent in the last 30 days",
	"activity_1h":                  "activity in the last hour",
	"activity_1d":                  "activity in the last day",
	"activity_7d":                  "activity in the last week",
	"cart_sessions":                "sessions with an add-to-cart",
	"abandoned_cart_sessions":      "sessions with an abandoned cart",
	"cart_abandon_rate":            "share of carts abandoned",
	"view_to_cart_rate":            "views turned into add-to-carts",
	"cart_to_purchase_rate":        "add-to-carts turned into purchases",
	"avg_price_viewed":             "average price of products viewed",
	"avg_price_bought":             "average price paid",
	"price_sensitivity":            "buys below the prices browsed",
	"days_since_last_seen":         "days since the last visit",
	"days_since_last_purchase":     "days since the last purchase",
	"tenure_days":                  "days since the first visit",
	"rfm_recency":                  "purchase recency score (RFM)",
	"rfm_frequency":                "purchase frequency score (RFM)",
	"rfm_monetary":                 "spend score (RFM)",
	"rfm_score":                    "RFM score",
	"purchase_days":                "days with a purchase",
	"repeat_transactions":          "repeat purchase days",
	"recency_weeks":                "weeks between first and last purchase",
	"age_weeks":                    "weeks since the first purchase",
	"repeat_avg_value":             "average repeat order value",
	"bgnbd_defined":                "customer model available",
	"bgnbd_p_alive":                "chance the customer is still active (BG/NBD)",
	"bgnbd_expected_purchases_90d": "expected purchases in the next 90 days (BG/NBD)",
	"bgnbd_clv_90d":                "expected spend in the next 90 days (BG/NBD × Gamma-Gamma)",
	"category":                     "favourite categories",
	"category_root":                "favourite departments",
	"brand":                        "favourite brands",
	"term":                         "search terms",
}

// Label returns the readable name of a network input (a feature name or a
// token field); an unknown name is returned with underscores as spaces.
func Label(input string) string {
	if l, ok := labels[input]; ok {
		return l
	}
	return strings.ReplaceAll(input, "_", " ")
}
