package bench

import (
	"fmt"
	"slices"
	"strings"
)

// The stated targets (ratios to the machine's own limits).
const (
	// targetFloorRatio: pipeline events/s ≥ this × the consume+decode floor.
	targetFloorRatio = 0.5
	// targetRoundTrips: Redis round trips per event at most this.
	targetRoundTrips = 0.2
	// targetTriggerP99Ms: p99 event → trigger below this at half load
	// (half the end-to-end maximum: the smaller of the ingester's and the
	// score role's maxima).
	targetTriggerP99Ms = 50.0
)

// targets evaluates the stated targets on every scale; every missed one
// says why, from the run's own figures (the profile, the flush sizes, the
// CPU the processes had).
func targets(r *Result) []Target {
	var out []Target
	flushMs := r.Setup.FlushIntervalMs
	for _, s := range r.Scales {
		if s.Max.Events > 0 {
			why := whyThroughput(r, &s)
			out = append(out,
				Target{Name: "pipeline ev/s ÷ consume+decode floor", Users: s.Users,
					Want: fmt.Sprintf("≥ %.0f %%", 100*targetFloorRatio), Got: 100 * s.Max.RatioToFloor, Unit: "%",
					Met: s.Max.RatioToFloor >= targetFloorRatio, Why: why},
				Target{Name: "the same, by CPU time per event (both CPU-bound)", Users: s.Users,
					Want: fmt.Sprintf("≥ %.0f %%", 100*targetFloorRatio), Got: 100 * s.Max.CPURatioToFloor, Unit: "%",
					Met: s.Max.CPURatioToFloor >= targetFloorRatio, Why: why},
				Target{Name: "Redis round trips per event, maximum speed", Users: s.Users,
					Want: fmt.Sprintf("≤ %g", targetRoundTrips), Got: s.Max.RoundTripsPerEvent,
					Met: s.Max.RoundTripsPerEvent <= targetRoundTrips,
					Why: fmt.Sprintf("%.0f events per flush, %.3f user loads per event", s.Max.EventsPerFlush,
						ratio(float64(s.Max.Ingest.Loads), float64(s.Max.Events)))})
		}
		for _, l := range s.Loads {
			pct := fmt.Sprintf("%.0f %% load", 100*l.Fraction)
			out = append(out, Target{Name: "Redis round trips per event, " + pct, Users: s.Users,
				Want: fmt.Sprintf("≤ %g", targetRoundTrips), Got: l.RoundTripsPerEvent,
				Met: l.RoundTripsPerEvent <= targetRoundTrips,
				Why: fmt.Sprintf("at this rate a flush (one round trip) carries %.1f events, and %.3f user loads per event "+
					"(cache misses) are round trips of their own", l.EventsPerFlush, l.LoadsPerEvent)})
			out = append(out, Target{Name: "p99 event → durable in Redis, " + pct, Users: s.Users,
				Want: fmt.Sprintf("≤ flush interval (%.0f ms)", flushMs), Got: l.Durable.P99Ms, Unit: "ms",
				Met: l.Durable.Count > 0 && l.Durable.P99Ms <= flushMs, Why: whyDurable(&s, &l)})
			if l.Fraction > 0.5 {
				continue
			}
			if l.Score != nil {
				out = append(out, Target{Name: "p99 event → segment change or trigger (score role), " + pct, Users: s.Users,
					Want: fmt.Sprintf("< %.0f ms", targetTriggerP99Ms), Got: l.Output.P99Ms, Unit: "ms",
					Met: l.Output.Count > 0 && l.Output.P99Ms < targetTriggerP99Ms, Why: whyTrigger(r, &s, &l)})
			} else {
				out = append(out, Target{Name: "p99 event → trigger (snapshot emit; no score role), " + pct, Users: s.Users,
					Want: fmt.Sprintf("< %.0f ms", targetTriggerP99Ms), Got: l.Emit.P99Ms, Unit: "ms",
					Met: l.Emit.Count > 0 && l.Emit.P99Ms < targetTriggerP99Ms, Why: whyDurable(&s, &l)})
			}
		}
	}
	for i := range out {
		if out[i].Met {
			out[i].Why = ""
		}
	}
	return out
}

// whyThroughput explains the maximum-speed ratio by the profile of the
// scale (or the first profile): the largest areas of CPU time.
func whyThroughput(r *Result, s *Scale) string {
	var b strings.Builder
	fmt.Fprintf(&b, "the pipeline costs %.1f CPU s per M events against the floor's %.1f (decode only)",
		s.Max.CPUSecondsPerMillion, s.ConsumeFloor.CPUSecondsPerMillion)
	if s.Max.IngestCPUBusy > 0 {
		fmt.Fprintf(&b, "; its CPU was %.0f %% busy, %.0f %% of it the ingester's", 100*s.Max.IngestCPUBusy, 100*s.Max.CPUUtilisation)
	}
	var prof *Profile
	for i := range r.Profiles {
		if r.Profiles[i].Users == s.Users || prof == nil {
			prof = &r.Profiles[i]
		}
	}
	if prof != nil && len(prof.Areas) > 0 {
		areas := slices.Clone(prof.Areas)
		slices.SortFunc(areas, func(a, b FuncShare) int {
			switch {
			case a.CumPct > b.CumPct:
				return -1
			case a.CumPct < b.CumPct:
				return 1
			}
			return 0
		})
		fmt.Fprintf(&b, "; profile (%s users), cumulative CPU:", fmtUsers(prof.Users))
		for i, a := range areas[:min(4, len(areas))] {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, " %s %.0f %%", a.Func, a.CumPct)
		}
	}
	return b.String()
}

// loadOf says what the offered load of l was a fraction of.
func loadOf(s *Scale, l *LoadRun) string {
	basis := s.LoadBasis
	if basis == "" {
		basis = "the ingester's median maximum-speed rate"
	}
	return fmt.Sprintf("offered %s events/s, %.0f %% of %s", fmtRate(l.OfferedPerSec), 100*l.Fraction, basis)
}

// whyDurable explains a durable latency by where the time went: before
// processing (Kafka, fetch, queue) or after (batching, flush), and how busy
// the CPUs were.
func whyDurable(s *Scale, l *LoadRun) string {
	return fmt.Sprintf("p99 %s ms of it passed before the event was processed (broker, fetch, queue); flushes took %.1f ms "+
		"on average for %.0f events; the ingester's CPU was %.0f %% busy (all processes), the machine %.0f %%; %s",
		fmtMs(l.Processed.P99Ms), l.FlushMsAvg, l.EventsPerFlush, 100*l.IngestCPUBusy, 100*l.MachineBusy, loadOf(s, l))
}

// whyTrigger explains the event → change/trigger latency by its parts:
// the snapshot emit, then the score role (fetch, score, flush), and the
// CPU the score role needed against what it had, at what share of the
// end-to-end maximum.
func whyTrigger(r *Result, s *Scale, l *LoadRun) string {
	sr := l.Score
	need := sr.CPUSecondsPerMillion * l.IngestedPerSec / 1e6
	shared := ""
	if r.Setup.ScoreCPUs != "" && r.Setup.ScoreCPUs == r.Setup.IngestCPUs {
		shared = " shared with the ingester"
	}
	if sm := s.ScoreMax; sm != nil {
		shared += fmt.Sprintf(" (alone on them, at full speed, it scores %s snapshots/s at %.0f µs CPU each)",
			fmtRate(sm.SnapshotsPerSec), sm.CPUSecondsPerMillion)
	}
	if sr.Unscored > 0 {
		shared += fmt.Sprintf("; it had not caught up (%d snapshots left %.0f s after the ingester drained)", sr.Unscored, sr.DrainSeconds)
	}
	return fmt.Sprintf("snapshot emit p99 %s ms, so the score role added about %s ms at p99 (fetch, score, flush every "+
		"500 snapshots or 20 ms); it used %.0f µs CPU per snapshot (%.0f µs in the engine, explanations %.0f µs each), "+
		"%.0f %% of a CPU at %s events/s, on CPUs %s%s; durable p99 %s ms; %s",
		fmtMs(l.Emit.P99Ms), fmtMs(max(0, l.Output.P99Ms-l.Emit.P99Ms)), sr.CPUSecondsPerMillion, sr.HandleMeanUs,
		sr.ExplainMeanUs, 100*need, fmtRate(l.IngestedPerSec), pinnedCPUs(r.Setup.ScoreCPUs), shared, fmtMs(l.Durable.P99Ms),
		loadOf(s, l))
}
