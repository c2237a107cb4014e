// Package clv implements the classical customer-lifetime-value baselines of
// Fader and Hardie: the BG/NBD model of repeat-purchase counts and the
// Gamma-Gamma model of spend per transaction, both fitted by maximum
// likelihood.
//
// # Models
//
// BG/NBD (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way: An
// Alternative to the Pareto/NBD Model", Marketing Science 24(2)): while alive,
// a customer buys as a Poisson process with rate λ ~ Gamma(r, α); after every
// purchase the customer drops out with probability p ~ Beta(a, b). A customer
// is summarised by (x, t_x, T): the number of repeat purchases x, the time of
// the last purchase t_x and the time since the first purchase T, all measured
// from the first purchase. [BGNBD.PAlive] is P(alive at T | x, t_x, T) and
// [BGNBD.ExpectedPurchases] is the conditional expectation E[Y(t) | x, t_x, T]
// of purchases in (T, T+t].
//
// Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV: Using Iso-Value Curves
// for Customer Base Analysis", JMR 42(4); Fader & Hardie 2013, "The
// Gamma-Gamma Model of Monetary Value"): each transaction value is Gamma(p, ν)
// and the per-customer ν is Gamma(q, γ) (field V). It is fitted on the
// customers with at least one repeat purchase, from x and the mean value of
// their repeat transactions. [GammaGamma.ExpectedSpend] is the posterior mean
// transaction value. The model assumes that spend and purchase timing are
// independent; [CLV] combines the two models under that assumption.
//
// # Fitting
//
// [FitBGNBD] and [FitGammaGamma] maximise the log-likelihood over the
// logarithms of the parameters (so they stay positive) with gonum's
// gradient-free Nelder-Mead method. Identical customer summaries are pooled
// before fitting, so a fit on tens of thousands of customers takes a fraction
// of a second. Inputs are validated first: NaN, infinite or negative values
// are reported as errors wrapping [ErrInvalidInput]; nothing in this package
// panics on input.
//
// # Summaries
//
// [Summarize] turns a transaction log into per-customer summaries with the
// Fader-Hardie conventions, and [Summary] does the same incrementally, in a
// few numbers per customer, for a streaming system. Purchases on the same UTC
// calendar day are merged into one transaction; frequency is the number of
// distinct purchase days minus one, recency the time from the first to the
// last purchase day and T the time from the first purchase day to the
// calibration cutoff day, in a caller-chosen unit (for the CDNOW data: weeks,
// with cutoff 1997-09-30 so that T ≤ 38.86 as in the paper).
package clv
