// Package dashboard serves the demo's live page: a single HTML page with
// its script and style sheet embedded in the binary (no build step, no
// external resources; charts are inline SVG drawn by the script), fed by
// polling a JSON endpoint.
//
// Routes (GET only):
//
//	/                 the page
//	/static/...       its script and style sheet
//	/api/stats        Stats: events/s, lag, p50/p99 latency, replay progress,
//	                  a history of those for the charts, the trainer's
//	                  learning curve (prequential AUC of the network against
//	                  the baselines), segment sizes, and the newest segment
//	                  changes and triggers with their explanations
//	/api/profile?id=  one profile (features, affinities, segments, scores) as
//	                  the profile API returns it (api.Profile)
//
// The numbers come from a Source, sampled every Config.Sample: the server
// derives rates (events/s from the consumed counter) and windowed latency
// quantiles (from the cumulative latency histogram) itself, so a Source only
// reads counters it keeps anyway. Segment changes and triggers are pushed
// with RecordChange and RecordTrigger into bounded rings (Config.Recent
// each); the trainer's curve and the segment sizes are read from the Source
// and are empty until a trainer or scorer plugs in.
//
// The page polls /api/stats once a second and redraws; the profile box asks
// /api/profile. Every response carries a restrictive Content-Security-Policy
// (same-origin scripts, styles and requests only).
package dashboard
