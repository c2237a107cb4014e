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
	// score role's maxima). It is judged on the first change or trigger an
	// event caused; when no event caused a trigger (the default triggers
	// but price_drop fire from timers), that is its first segment change.
	targetTriggerP99Ms = 50.0
)

// whyRoundTrips explains the Redis round trips per event of a run:
// pipeline.Stats counts one round trip per flush and one per fetched batch
// (RedisLoads: before a batch is applied, one round trip loads the batch's
// users that are not cached and checks every user of the batch for an
// erasure made meanwhile), so small batches and small flushes cost round
// trips whether or not any user missed the cache. at prefixes the
// sentence ("at this rate ").
func whyRoundTrips(at string, eventsPerFlush, loadsPerEvent float64) string {
	batch := "no batch load"
	if loadsPerEvent > 0 {
		batch = fmt.Sprintf("a fetched batch %.1f", 1/loadsPerEvent)
	}
	perFlush := 0.0
	if eventsPerFlush > 0 {
		perFlush = 1 / eventsPerFlush
	}
	return fmt.Sprintf("%sa flush (one round trip) carries %.1f events and %s: every batch costs a round trip of its own "+
		"before it is applied (loading the batch's users not in the cache and checking all its users for an erasure made "+
		"meanwhile), cache misses or not; %.3f flush + %.3f batch round trips per event", at, eventsPerFlush, batch,
		perFlush, loadsPerEvent)
}

// noEventTriggers says why an event → trigger latency was not measured
// in l: no trigger record named an event of the window as its source.
func noEventTriggers(r *Result, l *LoadRun) string {
	var records int64
	if l.Outputs != nil {
		records = l.Outputs.TriggerRecords
	}
	return fmt.Sprintf("no trigger was caused by an event of the window (of the %d trigger records, none named one as its "+
		"source): with %s; the latency judged is event → segment change", records, timerTriggers(r))
}

// timerTriggers says why the default triggers follow no event in this
// workload, after "with" (both the report's note and the target's why).
func timerTriggers(r *Result) string {
	s := "the default triggers, cart_abandonment, browse_abandonment and win_back fire from timers, without a source " +
		"event (counted under \"from timers\"), and only price_drop follows an event"
	if r.Setup.SampleRepricedItems == 0 {
		s += ", which needs an item seen again at a lower price: the sample shows every item at one price and re-keying " +
			"keeps prices, so it never fires"
	}
	return s
}

// memoryTarget judges the bounded run: the ingester's memory follows its
// cache bound (peak RSS below the run with the default cache) and Redis
// follows the active users (once the TTL has passed with no event, no
// user is active, so no user key is left).
func memoryTarget(s *Scale, bd *BoundedRun) Target {
	t := Target{Name: "memory follows active users", Users: s.Users,
		Want: fmt.Sprintf("ingester peak RSS (cache %d users) below the default cache's (%d); Redis user keys %s after "+
			"the last event ≈ users active since: 0", bd.CacheBoundUsers, s.Memory.CacheBoundUsers, bd.Waited),
		Got: float64(bd.RedisKeysAfterTTL), Unit: "user keys"}
	rssOK := bd.PeakRSSBytes > 0 && bd.PeakRSSBytes < s.Memory.PeakRSSBytes
	keysOK := bd.Waited != "" && bd.RedisKeysAfterTTL == 0
	t.Met = rssOK && keysOK
	t.Why = fmt.Sprintf("ingester peak RSS %.0f MiB with %d cached users against %.0f MiB with the default cache (%d); "+
		"Redis: %d of %d user keys at the end of the run (used_memory %+.1f MiB), %d user keys %s later (TTL %s plus a margin; "+
		"used_memory %+.1f MiB)", mib(bd.PeakRSSBytes), bd.CacheBoundUsers, mib(s.Memory.PeakRSSBytes),
		s.Memory.CacheBoundUsers, bd.RedisKeysAtEnd, s.Users, mib(bd.RedisUsedMemoryBytes), bd.RedisKeysAfterTTL,
		bd.Waited, bd.TTL, mib(bd.RedisUsedMemoryAfterTTLBytes))
	if bd.Waited == "" {
		t.Why += "; the run did not wait for the TTL to pass"
	}
	if bd.CacheBoundUsers >= s.Users {
		t.Why += fmt.Sprintf("; the cache bound (%d) holds all %d users, so it cannot show", bd.CacheBoundUsers, s.Users)
	}
	return t
}

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
					Why: whyRoundTrips("", s.Max.EventsPerFlush, ratio(float64(s.Max.Ingest.Loads), float64(s.Max.Events)))})
		}
		for _, l := range s.Loads {
			pct := fmt.Sprintf("%.0f %% load", 100*l.Fraction)
			out = append(out, Target{Name: "Redis round trips per event, " + pct, Users: s.Users,
				Want: fmt.Sprintf("≤ %g", targetRoundTrips), Got: l.RoundTripsPerEvent,
				Met: l.RoundTripsPerEvent <= targetRoundTrips,
				Why: whyRoundTrips("at this rate ", l.EventsPerFlush, l.LoadsPerEvent)})
			out = append(out, Target{Name: "p99 event → durable in Redis, " + pct, Users: s.Users,
				Want: fmt.Sprintf("≤ flush interval (%.0f ms)", flushMs), Got: l.Durable.P99Ms, Unit: "ms",
				Met: l.Durable.Count > 0 && l.Durable.P99Ms <= flushMs, Why: whyDurable(&s, &l)})
			if l.Fraction > 0.5 {
				continue
			}
			if l.Score != nil {
				// What the score role's output latency measured: with no
				// trigger caused by an event of the window, it is event →
				// segment change, and the name says so.
				name := "p99 event → segment change or trigger (score role), "
				why := whyTrigger(r, &s, &l)
				if l.Trigger.Count == 0 {
					name = "p99 event → segment change (score role; no event caused a trigger), "
					why = noEventTriggers(r, &l) + "; " + why
				}
				out = append(out, Target{Name: name + pct, Users: s.Users,
					Want: fmt.Sprintf("< %.0f ms", targetTriggerP99Ms), Got: l.Output.P99Ms, Unit: "ms",
					Met: l.Output.Count > 0 && l.Output.P99Ms < targetTriggerP99Ms, Why: why})
			} else {
				out = append(out, Target{Name: "p99 event → snapshot emit (no score role: no change or trigger measured), " + pct,
					Users: s.Users, Want: fmt.Sprintf("< %.0f ms", targetTriggerP99Ms), Got: l.Emit.P99Ms, Unit: "ms",
					Met: l.Emit.Count > 0 && l.Emit.P99Ms < targetTriggerP99Ms, Why: whyDurable(&s, &l)})
			}
		}
		if bd := s.Bounded; bd != nil {
			out = append(out, memoryTarget(&s, bd))
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
