package bench

import "fmt"

// The stated targets (ratios to the machine's own limits).
const (
	// targetFloorRatio: pipeline events/s ≥ this × the consume+decode floor.
	targetFloorRatio = 0.5
	// targetRoundTrips: Redis round trips per event at most this.
	targetRoundTrips = 0.2
	// targetTriggerP99Ms: p99 event → trigger below this at half load.
	targetTriggerP99Ms = 50.0
)

// targets evaluates the stated targets on every scale.
func targets(r *Result) []Target {
	var out []Target
	flushMs := r.Setup.FlushIntervalMs
	for _, s := range r.Scales {
		if s.Max.Events > 0 {
			out = append(out,
				Target{Name: "pipeline ev/s ÷ consume+decode floor", Users: s.Users,
					Want: fmt.Sprintf("≥ %.0f %%", 100*targetFloorRatio), Got: 100 * s.Max.RatioToFloor, Unit: "%",
					Met: s.Max.RatioToFloor >= targetFloorRatio},
				Target{Name: "the same, by CPU time per event (both CPU-bound)", Users: s.Users,
					Want: fmt.Sprintf("≥ %.0f %%", 100*targetFloorRatio), Got: 100 * s.Max.CPURatioToFloor, Unit: "%",
					Met: s.Max.CPURatioToFloor >= targetFloorRatio},
				Target{Name: "Redis round trips per event, maximum speed", Users: s.Users,
					Want: fmt.Sprintf("≤ %g", targetRoundTrips), Got: s.Max.RoundTripsPerEvent,
					Met: s.Max.RoundTripsPerEvent <= targetRoundTrips})
		}
		for _, l := range s.Loads {
			pct := fmt.Sprintf("%.0f %% load", 100*l.Fraction)
			out = append(out, Target{Name: "Redis round trips per event, " + pct, Users: s.Users,
				Want: fmt.Sprintf("≤ %g", targetRoundTrips), Got: l.RoundTripsPerEvent,
				Met: l.RoundTripsPerEvent <= targetRoundTrips})
			out = append(out, Target{Name: "p99 event → durable in Redis, " + pct, Users: s.Users,
				Want: fmt.Sprintf("≤ flush interval (%.0f ms)", flushMs), Got: l.Durable.P99Ms, Unit: "ms",
				Met: l.Durable.Count > 0 && l.Durable.P99Ms <= flushMs})
			if l.Fraction <= 0.5 {
				out = append(out, Target{Name: "p99 event → trigger (snapshot emit), " + pct, Users: s.Users,
					Want: fmt.Sprintf("< %.0f ms", targetTriggerP99Ms), Got: l.Emit.P99Ms, Unit: "ms",
					Met: l.Emit.Count > 0 && l.Emit.P99Ms < targetTriggerP99Ms})
			}
		}
	}
	return out
}
