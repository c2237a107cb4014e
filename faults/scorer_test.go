//go:build faults

package faults

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/app"
	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/internal/testenv"
	"github.com/streamprofile/streamprofile/model/registry"
	"github.com/streamprofile/streamprofile/model/trainer"
	"github.com/streamprofile/streamprofile/sink/segment"
	"github.com/streamprofile/streamprofile/stream"
	"github.com/streamprofile/streamprofile/stream/source"
)

// The ingester turns the sample into profile snapshots, a trainer cuts a
// champion from them, and the score role (app.Scorer) scores the snapshots
// in a process that is SIGKILLed at random moments, again and again, and
// restarted. An uninterrupted scorer process scores the same topic with
// the same champion into a Redis database of its own: the reference. The
// killed run must emit every segment change and trigger of the reference
// with the same content, repeat only what it had sent in the moments
// before a kill (same id, byte-identical: at-least-once, dropped by id
// downstream), emit nothing else, and leave the same memberships and
// segment indexes in Redis.
func TestScorerSIGKILL(t *testing.T) {
	e := newEnv(t, envOpts{parts: 4})
	r := &row{Case: "scorer (app.Scorer) SIGKILLed at random moments, repeatedly (4 partitions)"}
	record(t, r)
	recs := sampleRecords(t)
	late := lateUsers(t, recs, e.parts)
	if err := e.send(e.messages(append(slices.Clone(recs), late...))); err != nil {
		t.Fatal(err)
	}
	in := e.ingester("ingester")
	e.waitCaughtUp(2*time.Minute, in)
	in.stop()
	examples := e.topic + ".examples"
	snaps := e.readTopic(examples)
	for p, n := range lateByPartition(t, snaps, e.parts) {
		if n == 0 {
			t.Fatalf("examples partition %d holds no late snapshot: its timers would not all come due", p)
		}
	}
	regDir := t.TempDir()
	champion := trainChampion(t, e, examples, snaps, regDir)
	catalogue, dropped := catalogueWithoutDeciles(t)
	t.Logf("catalogue: the default less %v", dropped)

	// Reference: one scorer process, never interrupted.
	ref := e.scoreRun("ref", testenv.RedisDB(t), regDir, catalogue)
	refStart := time.Now()
	rp := spawn(t, "scorer-ref", ref.spec)
	refFirst := ref.waitProgress(rp, 0, 2*time.Minute)
	refDone := ref.waitDone(rp, 5*time.Minute).Sub(refStart)
	if ref.progress() != int64(len(snaps)) {
		t.Fatalf("reference: checkpoints cover %d of %d snapshots", ref.progress(), len(snaps))
	}
	rp.stop()
	refOut := ref.outputs()
	if refOut.repeats > 0 {
		t.Errorf("the uninterrupted scorer emitted %d records twice", refOut.repeats)
	}
	t.Logf("reference: %d changes, %d triggers; first checkpoint after %s, done after %s", refOut.changes,
		refOut.triggers, refFirst, refDone)

	// The killed run, beside the profiles as in production. The scorer
	// takes the backlog in a few seconds, so the moments are drawn in
	// progress, not time: an incarnation is killed 0–100 ms after its
	// checkpoints pass a random point of the input not yet scored,
	// somewhere in its cycle of emit, acknowledgement, user writes and
	// checkpoint.
	kr := e.scoreRun("killed", e.rdb, regDir, catalogue)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 13))
	t.Logf("seed %d", seed)
	const kills = 5
	total := int64(len(snaps))
	var procs []*proc
	var recovered []time.Duration
	var at []string
	for kill := 1; kill <= kills; kill++ {
		before := kr.progress()
		if before >= total {
			// The last incarnation checkpointed everything before it was
			// killed: a restart has nothing left to recover from.
			t.Logf("all %d snapshots checkpointed after %d kills; no further kill", total, kill-1)
			break
		}
		p := spawn(t, fmt.Sprintf("scorer-%d", kill), kr.spec)
		procs = append(procs, p)
		d := kr.waitProgress(p, before, 2*time.Minute)
		if kill > 1 {
			recovered = append(recovered, d)
		}
		// The next kill point: drawn in the rest of the input, so that
		// the kills spread over it.
		now := kr.progress()
		target := now + rng.Int64N(max(1, (total-now)*2/int64(kills-kill+2)))
		kr.waitProgress(p, target-1, 2*time.Minute)
		time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond)
		p.kill()
		at = append(at, strconv.FormatInt(kr.progress(), 10))
		t.Logf("kill %d: scorer checkpoints covered %d, then %s snapshots (target %d)", kill, before, at[len(at)-1],
			target)
	}
	before := kr.progress()
	finalStart := time.Now()
	final := spawn(t, "scorer-final", kr.spec)
	procs = append(procs, final)
	if before < total {
		recovered = append(recovered, kr.waitProgress(final, before, 2*time.Minute))
	}
	caught := kr.waitDone(final, 5*time.Minute).Sub(finalStart)
	final.stop()
	for _, p := range procs {
		r.PeakRSS = max(r.PeakRSS, p.peak.Load())
	}
	got := kr.outputs()

	// Every reference record, once or more, byte-identical; nothing else.
	var missing, extra, differ, onlyRecs int64
	for id, sum := range refOut.first {
		g, ok := got.first[id]
		switch {
		case !ok:
			missing++
			if missing <= 3 {
				t.Errorf("the killed run never emitted %s", refOut.what(id))
			}
		case g != sum:
			differ++
			if sameBut(got.raw[id], refOut.raw[id], "recommended_items", "recommended_categories") {
				onlyRecs++
			}
			if differ <= 3 {
				t.Errorf("%s: the killed run's record differs from the reference's:\n%s\n%s", id, got.what(id), refOut.what(id))
			}
		}
	}
	for id := range got.first {
		if _, ok := refOut.first[id]; !ok {
			extra++
			if extra <= 3 {
				t.Errorf("the killed run emitted %s, which the reference did not", got.what(id))
			}
		}
	}
	if got.differing > 0 {
		t.Errorf("%d repeated records differ from their first copy", got.differing)
	}
	refMem, gotMem := ref.memberships(), kr.memberships()
	memDiffer := compareMemberships(t, refMem, gotMem)
	idxDiffer := compareIndexes(t, ref.indexes(), kr.indexes())

	r.Lost = missing
	r.Dup = extra + differ + got.differing
	r.Injected = fmt.Sprintf("%d SIGKILLs at random moments (%d processes "+
		"in all), at drawn points of the backlog: checkpoints covered %s of %d snapshots", len(at), len(procs), strings.Join(at, ", "), len(snaps))
	r.Recovered = stats(recovered)
	r.Notes = fmt.Sprintf("unit: segment changes and triggers (by event and trigger id), not events; default catalogue "+
		"less its decile segment%s %s (decile sketches live in memory: they start empty after a restart and follow how "+
		"partitions interleave, so no two runs agree on them); champion version %d; "+
		"reference (uninterrupted scorer process) %d changes + %d triggers, 0 emitted twice; killed run %d records: "+
		"%d at-least-once repeats (same id, sent just before a kill, dropped by id downstream; %d of them not byte-identical "+
		"to their first copy), %d differing from the reference (%d only in their recommended items and categories), "+
		"%d not in it; memberships of %d users and %d segment indexes equal to the reference's "+
		"(%d and %d differ); recovery = restart to the first scorer checkpoint past the kill (includes the 6 s session "+
		"timeout); the last incarnation done (input scored, due timers fired) %s after its start, the reference %s after its; "+
		"reference peak memory %s",
		map[bool]string{true: "s", false: ""}[len(dropped) > 1], strings.Join(dropped, ", "), champion, refOut.changes, refOut.triggers, got.records, got.repeats, got.differing, differ, onlyRecs, extra, len(refMem), len(ref.indexes()),
		memDiffer, idxDiffer, dur(caught), dur(refDone), mib(rp.peak.Load()))
	if differ > 0 && onlyRecs == differ {
		r.Notes += "; the differing triggers recommend from the per-partition item table a restarted processor rebuilds " +
			"(saved every 30 s, the records after it relearnt by engine.learn, without the users' recent views that " +
			"make co-views), which is not the uninterrupted table: sink/scorer bug, open"
	}
	if refOut.changes < 1000 || refOut.triggers < 10 {
		t.Errorf("reference: %d changes, %d triggers: too few to tell anything", refOut.changes, refOut.triggers)
	}
}

// catalogueWithoutDeciles writes the default segment catalogue less its
// segments with decile(...) rules to a file and returns its path and the
// segments left out. Deciles come from sketches the scorer keeps in memory:
// they depend on how the partitions interleave and start empty after a
// restart (sink/scorer's doc), so no two runs agree on them; every other
// rule depends on each user's own snapshots only.
func catalogueWithoutDeciles(t *testing.T) (string, []string) {
	t.Helper()
	var out, cur []string
	var dropped []string
	in := false
	flush := func() {
		if name := strings.TrimSpace(strings.TrimPrefix(cur[0], "  - name: ")); strings.Contains(strings.Join(cur, ""), "decile(") {
			dropped = append(dropped, name)
		} else {
			out = append(out, cur...)
		}
		cur, in = nil, false
	}
	for _, l := range strings.SplitAfter(string(segment.DefaultYAML()), "\n") {
		switch {
		case strings.HasPrefix(l, "  - name: "):
			if in {
				flush()
			}
			in = true
		case in && strings.TrimSpace(l) != "" && !strings.HasPrefix(l, " "):
			flush() // a top-level key after the segments
		}
		if in {
			cur = append(cur, l)
		} else {
			out = append(out, l)
		}
	}
	if in {
		flush()
	}
	raw := []byte(strings.Join(out, ""))
	c, err := segment.Parse("nodeciles.yaml", raw, segment.Config{})
	if err != nil {
		t.Fatalf("the default catalogue less %v: %v", dropped, err)
	}
	def, err := segment.Default()
	if err != nil {
		t.Fatal(err)
	}
	if len(dropped) == 0 || c.Len() != def.Len()-len(dropped) {
		t.Fatalf("the default catalogue less %v holds %d of %d segments", dropped, c.Len(), def.Len())
	}
	path := filepath.Join(t.TempDir(), "nodeciles.yaml")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, dropped
}

// sameBut reports whether the JSON objects a and b are equal once the
// fields named are left out.
func sameBut(a, b []byte, fields ...string) bool {
	var x, y map[string]any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	for _, f := range fields {
		delete(x, f)
		delete(y, f)
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return string(ja) == string(jb)
}

// lateUsers returns, for every partition of the examples topic, a search
// by a new user 60 days after the sample's last event: every partition's
// scorer clock passes the sample's cart, browse and win-back timers (not
// the 120-day retention, so the memberships stay to be compared), and the
// trainer's labels all mature.
func lateUsers(t *testing.T, recs []source.Record, parts int) []source.Record {
	t.Helper()
	var last time.Time
	for _, rec := range recs {
		if rec.Event.TS.After(last) {
			last = rec.Event.TS
		}
	}
	ts := last.Add(60 * 24 * time.Hour)
	dec := stream.NewDecoder(stream.Limits{}, nil)
	bal := kafka.Murmur2Balancer{}
	all := make([]int, parts)
	for p := range all {
		all[p] = p
	}
	var out []source.Record
	for p := range parts {
		for k := 0; ; k++ {
			u := "late-" + strconv.Itoa(k)
			if bal.Balance(kafka.Message{Key: []byte(u)}, all...) != p {
				continue
			}
			ev := stream.Event{Schema: 1, EventID: "ev-" + u, Type: stream.TypeSearch, Query: "late", UserID: u,
				SessionID: u + "-s", TS: ts}
			out = append(out, recode(t, dec, &ev, 0))
			break
		}
	}
	return out
}

// lateByPartition counts the late users' snapshots per partition.
func lateByPartition(t *testing.T, msgs []kafka.Message, parts int) []int {
	t.Helper()
	n := make([]int, parts)
	for _, m := range msgs {
		if strings.HasPrefix(string(m.Key), "late-") {
			n[m.Partition]++
		}
	}
	return n
}

// trainChampion trains a small network on the examples (in offset order,
// partition by partition) into a registry in dir and makes its first
// version (5 batches of 32 examples) the champion, which both scorers load
// as they start. The fully trained network learns the sample's low purchase
// rate and scores almost no one above the browse-intent threshold (0.2),
// so the retarget topic would stay nearly empty; the early version keeps
// browse abandonment, and the triggers, firing by the hundred. Which
// version is champion does not matter to the fault, only that both
// scorers use the same.
func trainChampion(t *testing.T, e *env, topic string, msgs []kafka.Message, dir string) int64 {
	t.Helper()
	ctx := context.Background()
	b, err := registry.NewDirBackend(dir)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(registry.Config{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	cfg := trainerConfig(e.spec).Trainer
	cfg.Topic = topic
	// A version every 5 batches of 32 matured examples, never on time.
	cfg.CheckpointInterval = time.Hour
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	tr, err := trainer.New(cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for _, m := range msgs {
		if err := tr.Process(ctx, m.Partition, m.Offset, m.Value); err != nil {
			t.Fatal(err)
		}
	}
	n, err := tr.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("the trainer cut no version")
	}
	meta, err := reg.Meta(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Champion != 1 {
		if _, err := reg.Promote(ctx, 1, "fault suite: the scorers' champion"); err != nil {
			t.Fatal(err)
		}
	}
	return 1
}

// scoreRun is one scorer's consumer group, Redis database and topics.
type scoreRun struct {
	e    *env
	spec childSpec
	rdb  *redis.Client
	// store reads the scorer's partition checkpoints, which follow the
	// ingester's key layout (sink/scorer's doc).
	store *features.Store
}

// scoreRun returns the configuration of a scorer named name, with its own
// group and output topics, storing in rdb (prefix "sp") and reading the
// champion from the registry in regDir.
func (e *env) scoreRun(name string, rdb *redis.Client, regDir, catalogue string) *scoreRun {
	e.t.Helper()
	s := e.spec
	opts := rdb.Options()
	s.Role, s.Topic, s.Group, s.Prefix = "score", e.topic+".examples", name+"-"+e.topic, "sp"
	s.Redis, s.DB, s.RegistryDir, s.Segments = opts.Addr, opts.DB, regDir, catalogue
	s.Changes, s.Retarget, s.Erasures = e.topic+"."+name+".changes", e.topic+"."+name+".retarget", e.topic+"."+name+".erasures"
	topics := []string{s.Changes, s.Retarget, s.Erasures}
	if err := stream.EnsureTopics(context.Background(), e.brokers,
		stream.TopicSpec{Name: s.Changes, Partitions: e.parts}, stream.TopicSpec{Name: s.Retarget, Partitions: e.parts},
		stream.TopicSpec{Name: s.Erasures, Partitions: 1, Compacted: true}); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c := &kafka.Client{Addr: kafka.TCP(e.brokers...)}
		if _, err := c.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: topics}); err != nil {
			e.t.Logf("deleting %v: %v", topics, err)
		}
	})
	store, err := features.NewStore(rdb, features.StoreConfig{Prefix: s.Prefix, Group: s.Group})
	if err != nil {
		e.t.Fatal(err)
	}
	return &scoreRun{e: e, spec: s, rdb: rdb, store: store}
}

// progress is the number of snapshots the scorer's checkpoints cover.
func (r *scoreRun) progress() int64 {
	var n int64
	for p := 0; p < r.e.parts; p++ {
		cp, err := r.store.LoadCheckpoint(context.Background(), r.spec.Topic, p)
		if err != nil {
			r.e.t.Fatal(err)
		}
		n += max(cp.Next, 0)
	}
	return n
}

// lag is the number of snapshots the scorer's checkpoints do not cover.
func (r *scoreRun) lag() int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := app.Lag(ctx, r.e.brokers, r.spec.Topic, r.store)
	if err != nil {
		return -1
	}
	var n int64
	for _, v := range l {
		n += v
	}
	return n
}

// due is the number of timers due at their partition's checkpointed clock
// (sink/scorer's Redis keys): timers that have yet to fire.
func (r *scoreRun) due() int64 {
	ctx := context.Background()
	var n int64
	for p := 0; p < r.e.parts; p++ {
		ps := "{" + r.spec.Group + "}:" + r.spec.Topic + ":" + strconv.Itoa(p)
		wm, err := r.rdb.HGet(ctx, r.spec.Prefix+":ckpt:"+ps, "wm").Result()
		if err == redis.Nil {
			continue
		}
		if err != nil {
			return -1
		}
		c, err := r.rdb.ZCount(ctx, r.spec.Prefix+":timers:"+ps, "-inf", wm).Result()
		if err != nil {
			return -1
		}
		n += c
	}
	return n
}

// emitted is the number of records in the output topics.
func (r *scoreRun) emitted() int64 {
	var n int64
	for _, topic := range []string{r.spec.Changes, r.spec.Retarget} {
		for _, end := range r.e.topicEnds(topic) {
			if end < 0 {
				return -1
			}
			n += end
		}
	}
	return n
}

// waitProgress waits until the scorer's checkpoints cover more than from
// snapshots and returns how long that took.
func (r *scoreRun) waitProgress(p *proc, from int64, timeout time.Duration) time.Duration {
	r.e.t.Helper()
	start := time.Now()
	for r.progress() <= from {
		if p.exited() {
			r.e.t.Fatalf("%s exited:\n%s", p.name, tail(p.log, 20))
		}
		if time.Since(start) > timeout {
			r.e.t.Fatalf("%s: no scorer checkpoint beyond %d snapshots within %s", p.name, from, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// waitDone waits until the scorer has scored every snapshot, fired every
// due timer and emitted nothing for 2 s, and returns when it got there
// (without the 2 s).
func (r *scoreRun) waitDone(p *proc, timeout time.Duration) time.Time {
	r.e.t.Helper()
	start := time.Now()
	last, since := int64(-1), time.Now()
	for {
		if p.exited() {
			r.e.t.Fatalf("%s exited:\n%s", p.name, tail(p.log, 20))
		}
		if time.Since(start) > timeout {
			r.e.t.Fatalf("%s not done after %s: lag %d, due timers %d", p.name, timeout, r.lag(), r.due())
		}
		if r.lag() != 0 || r.due() != 0 {
			last = -1
		} else if n := r.emitted(); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= 2*time.Second {
			return since
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// scoreOutputs are the records of a scorer's output topics.
type scoreOutputs struct {
	changes, triggers, records int64
	// first is each id's first copy ("change/"+event_id or
	// "trigger/"+trigger_id → SHA-256 of the value).
	first              map[string][sha256.Size]byte
	raw                map[string][]byte // each id's first copy
	repeats, differing int64
}

// what names a record for the failure messages: the change's segment or
// the trigger's kind, and its value.
func (o scoreOutputs) what(id string) string {
	var v struct{ Segment, Kind string }
	_ = json.Unmarshal(o.raw[id], &v)
	return v.Segment + v.Kind + ": " + string(o.raw[id])
}

func (r *scoreRun) outputs() scoreOutputs {
	r.e.t.Helper()
	out := scoreOutputs{first: map[string][sha256.Size]byte{}, raw: map[string][]byte{}}
	read := func(topic, kind, field string, n *int64) {
		for _, m := range r.e.readTopic(topic) {
			var v map[string]any
			if err := json.Unmarshal(m.Value, &v); err != nil {
				r.e.t.Fatalf("%s: %v", topic, err)
			}
			id, _ := v[field].(string)
			if id == "" {
				r.e.t.Fatalf("%s: a record without %s: %s", topic, field, m.Value)
			}
			out.records++
			sum := sha256.Sum256(m.Value)
			key := kind + "/" + id
			if f, ok := out.first[key]; ok {
				out.repeats++
				if f != sum {
					out.differing++
				}
				continue
			}
			out.first[key] = sum
			out.raw[key] = m.Value
			*n++
		}
	}
	read(r.spec.Changes, "change", "event_id", &out.changes)
	read(r.spec.Retarget, "trigger", "trigger_id", &out.triggers)
	return out
}

// memberships returns every stored membership (user → segments, and the
// encoded value).
func (r *scoreRun) memberships() map[string]storedMembership {
	r.e.t.Helper()
	ctx := context.Background()
	out := map[string]storedMembership{}
	it := r.rdb.Scan(ctx, 0, r.spec.Prefix+":{*}:seg", 1000).Iterator()
	for it.Next(ctx) {
		key := it.Val()
		user := key[strings.Index(key, "{")+1 : strings.LastIndex(key, "}")]
		raw, err := r.rdb.Get(ctx, key).Bytes()
		if err != nil {
			r.e.t.Fatal(err)
		}
		var m segment.Membership
		if err := m.UnmarshalBinary(raw); err != nil {
			r.e.t.Fatalf("%s: %v", key, err)
		}
		out[user] = storedMembership{segments: strings.Join(m.Segments(), ","), raw: string(raw)}
	}
	if err := it.Err(); err != nil {
		r.e.t.Fatal(err)
	}
	return out
}

type storedMembership struct{ segments, raw string }

// indexes returns every segment index (segment → sorted members).
func (r *scoreRun) indexes() map[string][]string {
	r.e.t.Helper()
	ctx := context.Background()
	out := map[string][]string{}
	it := r.rdb.Scan(ctx, 0, r.spec.Prefix+":segidx:{*}", 1000).Iterator()
	for it.Next(ctx) {
		key := it.Val()
		members, err := r.rdb.SMembers(ctx, key).Result()
		if err != nil {
			r.e.t.Fatal(err)
		}
		slices.Sort(members)
		out[key[strings.Index(key, "{")+1:strings.LastIndex(key, "}")]] = members
	}
	if err := it.Err(); err != nil {
		r.e.t.Fatal(err)
	}
	return out
}

// compareMemberships reports the users whose stored membership differs
// between want and got (segments, or the encoded value).
func compareMemberships(t *testing.T, want, got map[string]storedMembership) int {
	t.Helper()
	n := 0
	for u, w := range want {
		g, ok := got[u]
		if ok && g == w {
			continue
		}
		n++
		if n <= 3 {
			t.Errorf("user %s: membership %q (stored %v), reference %q", u, g.segments, ok, w.segments)
		}
	}
	for u, g := range got {
		if _, ok := want[u]; !ok {
			n++
			if n <= 3 {
				t.Errorf("user %s: membership %q, none in the reference", u, g.segments)
			}
		}
	}
	if n > 0 {
		t.Errorf("%d users' memberships differ from the reference's", n)
	}
	return n
}

// compareIndexes reports the segments whose index differs.
func compareIndexes(t *testing.T, want, got map[string][]string) int {
	t.Helper()
	n := 0
	for seg, w := range want {
		if !slices.Equal(w, got[seg]) {
			n++
			t.Errorf("segment %s: %d members indexed, reference %d", seg, len(got[seg]), len(w))
		}
	}
	for seg, g := range got {
		if _, ok := want[seg]; !ok && len(g) > 0 {
			n++
			t.Errorf("segment %s: %d members indexed, no index in the reference", seg, len(g))
		}
	}
	return n
}
