//go:build faults

package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/internal/testenv"
	"github.com/streamprofile/streamprofile/stream"
	"github.com/streamprofile/streamprofile/stream/source"
)

// partitionProgress returns each partition's checkpoint (next offset, 0
// when none), or nil while Redis does not answer.
func (e *env) partitionProgress() []int64 {
	out := make([]int64, e.parts)
	for p := range out {
		cp, err := e.store.LoadCheckpoint(context.Background(), e.topic, p)
		if err != nil {
			return nil
		}
		out[p] = max(cp.Next, 0)
	}
	return out
}

// topicEnds returns each partition's end offset of topic (-1 unknown).
func (e *env) topicEnds(topic string) []int64 {
	out := make([]int64, e.parts)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var reqs []kafka.OffsetRequest
	for p := range out {
		out[p] = -1
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	res, err := (&kafka.Client{Addr: kafka.TCP(e.brokers...)}).ListOffsets(ctx,
		&kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return out
	}
	for _, po := range res.Topics[topic] {
		if po.Error == nil {
			out[po.Partition] = po.LastOffset
		}
	}
	return out
}

// waitAllMoved waits until every partition's checkpoint has passed its
// value in from, or covers everything published to it, and returns how
// long that took: the time until every partition is processed again.
func (e *env) waitAllMoved(from []int64, timeout time.Duration) time.Duration {
	e.t.Helper()
	start := time.Now()
	for {
		cur, ends := e.partitionProgress(), e.topicEnds(e.topic)
		done := cur != nil
		for p := 0; done && p < e.parts; p++ {
			done = cur[p] > from[p] || (ends[p] >= 0 && cur[p] >= ends[p])
		}
		if done {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			e.t.Fatalf("partitions did not all move within %s: from %v, now %v, ends %v", timeout, from, cur, ends)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sendRetrying is sendPaced that waits out a broker outage: a chunk that
// fails is sent again (kafka-go has no idempotent producer, so a retried
// chunk may be stored twice; the duplicates carry the same event ids).
func (e *env) sendRetrying(msgs []kafka.Message, rate float64, sent, retries *atomic.Int64) {
	step := max(1, int(rate/20))
	for i := 0; i < len(msgs); i += step {
		chunk := msgs[i:min(i+step, len(msgs))]
		start := time.Now()
		for e.prod.Send(context.Background(), chunk...) != nil {
			retries.Add(1)
			time.Sleep(200 * time.Millisecond)
		}
		sent.Add(int64(len(chunk)))
		time.Sleep(time.Duration(float64(len(chunk))/rate*float64(time.Second)) - time.Since(start))
	}
}

func stats(ds []time.Duration) string {
	if len(ds) == 0 {
		return "—"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("median %s, max %s", dur(s[len(s)/2]), dur(s[len(s)-1]))
}

// Two ingesters share four partitions while the sample streams in at 400
// events/s; one of them, or both, is SIGKILLed at a random moment (no
// flush, no leave), again and again, and restarted at once. A killed
// member's partitions wait for its session to time out (6 s) before the
// group hands them over.
func TestIngesterSIGKILL(t *testing.T) {
	e := newEnv(t, envOpts{parts: 4})
	r := &row{Case: "ingesters SIGKILLed at random moments, repeatedly (2 members, 4 partitions)"}
	record(t, r)
	recs := sampleRecords(t)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 7))
	t.Logf("seed %d", seed)
	var sent atomic.Int64
	pub := make(chan error, 1)
	go func() { pub <- e.sendPaced(context.Background(), e.messages(recs), 400, &sent) }()
	procs := []*proc{e.ingester("ingester-a"), e.ingester("ingester-b")}
	all := slices.Clone(procs)
	var recovered []time.Duration
	kills := 0
	for round := 0; round < 8 && sent.Load() < int64(len(recs)); round++ {
		time.Sleep(time.Duration(500+rng.IntN(2500)) * time.Millisecond)
		victims := []int{rng.IntN(2)}
		if rng.IntN(4) == 0 {
			victims = []int{0, 1}
		}
		for _, i := range victims {
			procs[i].kill()
			kills++
		}
		from := e.partitionProgress()
		for _, i := range victims {
			procs[i] = e.ingester(fmt.Sprintf("ingester-%c%d", 'a'+i, round))
			all = append(all, procs[i])
		}
		recovered = append(recovered, e.waitAllMoved(from, 2*time.Minute))
		t.Logf("round %d: killed %v at %d of %d published; every partition moved again after %s", round, victims,
			sent.Load(), len(recs), recovered[len(recovered)-1])
	}
	if err := <-pub; err != nil {
		t.Fatal(err)
	}
	e.waitCaughtUp(2*time.Minute, procs...)
	for _, p := range all {
		r.PeakRSS = max(r.PeakRSS, p.peak.Load())
	}
	for _, p := range procs {
		p.stop()
	}
	dlq, ex := e.verify(r, recs, nil)
	r.Injected = fmt.Sprintf("%d SIGKILLs in %d rounds (%d processes in all)", kills, len(recovered), len(all))
	r.Recovered = stats(recovered)
	r.Notes = fmt.Sprintf("recovery = every partition processed again (includes the 6 s session timeout); "+
		"DLQ %d (0 expected); snapshots: %d distinct, %d repeats (at-least-once), %d differing", dlq.Records,
		ex.Distinct, ex.Repeats, ex.Differing)
}

// The Kafka broker is stopped (SIGTERM, controlled shutdown) while the
// sample streams in, kept down for 5 s and started again on its data. The
// ingester's fetches, snapshot writes and group membership fail meanwhile;
// the publisher waits the outage out.
func TestKafkaRestartMidStream(t *testing.T) {
	e := newEnv(t, envOpts{exclusiveKafka: true})
	r := &row{Case: "Kafka broker stopped and restarted mid-stream"}
	record(t, r)
	recs := sampleRecords(t)
	in := e.ingester("ingester")
	var sent, retries atomic.Int64
	pubDone := make(chan struct{})
	go func() { defer close(pubDone); e.sendRetrying(e.messages(recs), 2000, &sent, &retries) }()
	e.waitProgress(int64(len(recs)/3), time.Minute)
	at := e.progress()
	start := time.Now()
	testenv.StopKafka(t)
	time.Sleep(5 * time.Second)
	testenv.StartKafka(t)
	down := time.Since(start)
	r.Recovered = dur(e.waitProgress(e.progress(), 3*time.Minute))
	<-pubDone
	caught := e.waitCaughtUp(3*time.Minute, in)
	r.PeakRSS = in.peak.Load()
	in.stop() // the child writes its final counters as it exits
	st := in.readStats()
	dlq, ex := e.verify(r, recs, nil)
	r.Injected = fmt.Sprintf("broker down %s (stop, 5 s, start) after %d of %d events", dur(down), at, len(recs))
	r.Notes = fmt.Sprintf("publisher retried %d chunks; ingester consumed %d records (%d duplicates dropped by event id); "+
		"lag 0 %s after the last publish; DLQ %d (0 expected); snapshots: %d distinct, %d repeats, %d differing",
		retries.Load(), st.Consumed, st.Duplicates, dur(caught), dlq.Records, ex.Distinct, ex.Repeats, ex.Differing)
}

// redis-server is paused (CLIENT PAUSE ALL) for 2, 4 and 6 s while the
// sample streams in; the ingester's Redis timeout is 300 ms, so its loads
// and flushes time out. go-redis retries a timed-out command (three times,
// with backoff: about 2.5 s in all); longer pauses fail the step, and the
// processor restarts its partition from the checkpoint while commands sent
// before may still run once the pause ends: the offset stamps must refuse
// them or make them harmless. Meanwhile the backlog stays in Kafka.
func TestSlowRedis(t *testing.T) {
	e := newEnv(t, envOpts{exclusiveRedis: true, redisTimeout: 300 * time.Millisecond})
	r := &row{Case: "redis-server made slow: CLIENT PAUSE for 2, 4 and 6 s (client timeout 300 ms)"}
	record(t, r)
	recs := sampleRecords(t)
	in := e.ingester("ingester")
	var sent atomic.Int64
	pub := make(chan error, 1)
	go func() { pub <- e.sendPaced(context.Background(), e.messages(recs), 800, &sent) }()
	var recovered []time.Duration
	var lags []string
	for i, pause := range []time.Duration{2 * time.Second, 4 * time.Second, 6 * time.Second} {
		e.waitProgress(int64(len(recs)*(i+1)/5), time.Minute)
		before := e.lag()
		if err := e.rdb.Do(context.Background(), "CLIENT", "PAUSE", pause.Milliseconds(), "ALL").Err(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(pause + 100*time.Millisecond)
		during := e.lag() // the first call after the pause: the backlog it left
		recovered = append(recovered, e.waitProgress(e.progress(), time.Minute))
		lags = append(lags, fmt.Sprintf("%d→%d", before, during))
	}
	if err := <-pub; err != nil {
		t.Fatal(err)
	}
	e.waitCaughtUp(2*time.Minute, in)
	r.PeakRSS = in.peak.Load()
	in.stop() // the child writes its final counters as it exits
	st := in.readStats()
	restarts := strings.Count(tail(in.log, 1<<20), "partition processor failed")
	dlq, ex := e.verify(r, recs, nil)
	r.Injected = "CLIENT PAUSE ALL for 2 s, 4 s, 6 s at 800 events/s"
	r.Recovered = stats(recovered)
	r.Notes = fmt.Sprintf("lag before→after each pause %s (backpressure: the backlog waits in Kafka); %d partition restarts "+
		"from checkpoints, %d records re-read (%d replay-skipped); DLQ %d; snapshots: %d distinct, %d repeats, %d differing",
		strings.Join(lags, ", "), restarts, st.Consumed-int64(len(recs)), st.Replayed, dlq.Records, ex.Distinct, ex.Repeats,
		ex.Differing)
}

// poison is one kind of bad record.
type poison struct {
	reason stream.Reason
	make   func(r source.Record, id string) kafka.Message
}

func poisons(first time.Time) []poison {
	ev := func(r source.Record, id string, edit func(m map[string]any)) []byte {
		m := map[string]any{"schema": 1, "event_id": id, "type": "view", "user_id": r.Event.ProfileKey(),
			"ts": r.Event.TS.Format(time.RFC3339), "item_id": r.Event.ItemID, "price": 1.5}
		edit(m)
		b, _ := json.Marshal(m) // strings and numbers only: cannot fail
		return b
	}
	keyed := func(r source.Record, v []byte) kafka.Message {
		return kafka.Message{Key: []byte(r.Event.ProfileKey()), Value: v}
	}
	return []poison{
		{stream.ReasonMalformed, func(r source.Record, id string) kafka.Message {
			return keyed(r, []byte(`{"schema":1,"event_id":"`+id+`",`))
		}},
		{stream.ReasonUnknownSchema, func(r source.Record, id string) kafka.Message {
			return keyed(r, ev(r, id, func(m map[string]any) { m["schema"] = 7 }))
		}},
		{stream.ReasonMissingField, func(r source.Record, id string) kafka.Message {
			return keyed(r, ev(r, id, func(m map[string]any) { delete(m, "item_id") }))
		}},
		{stream.ReasonBadTime, func(r source.Record, id string) kafka.Message {
			return keyed(r, ev(r, id, func(m map[string]any) { m["ts"] = "yesterday at noon" }))
		}},
		{stream.ReasonNegativePrice, func(r source.Record, id string) kafka.Message {
			return keyed(r, ev(r, id, func(m map[string]any) { m["price"] = -9.99 }))
		}},
		{stream.ReasonBadField, func(r source.Record, id string) kafka.Message {
			return keyed(r, ev(r, id, func(m map[string]any) { m["type"] = "teleport" }))
		}},
		{stream.ReasonFutureTime, func(r source.Record, id string) kafka.Message {
			return keyed(r, ev(r, id, func(m map[string]any) { m["ts"] = time.Now().Add(72 * time.Hour).Format(time.RFC3339) }))
		}},
		{stream.ReasonKeyMismatch, func(r source.Record, id string) kafka.Message {
			return kafka.Message{Key: []byte("not-" + r.Event.ProfileKey()), Value: ev(r, id, func(map[string]any) {})}
		}},
		{stream.ReasonLate, func(r source.Record, id string) kafka.Message {
			return keyed(r, ev(r, id, func(m map[string]any) { m["ts"] = first.Add(-time.Hour).Format(time.RFC3339) }))
		}},
		{stream.ReasonTooLarge, func(r source.Record, id string) kafka.Message {
			return keyed(r, ev(r, id, func(m map[string]any) { m["text"] = strings.Repeat("x", 70<<10) }))
		}},
	}
}

// poisoned interleaves recs with one bad record after each good one, of
// every kind in turn (too_large only every 200th, late only once the
// partitions' watermarks have moved), and returns the messages with the
// expected DLQ reason of each bad one.
func (e *env) poisoned(recs []source.Record) ([]kafka.Message, map[string]stream.Reason) {
	kinds := poisons(recs[0].Event.TS)
	want := map[string]stream.Reason{}
	var msgs []kafka.Message
	n := 0
	for i, r := range recs {
		msgs = append(msgs, kafka.Message{Topic: e.topic, Key: []byte(r.Event.ProfileKey()), Value: r.Value})
		var k poison
		for {
			k = kinds[n%len(kinds)]
			n++
			switch {
			case k.reason == stream.ReasonTooLarge && n%200 != 0:
				continue
			case k.reason == stream.ReasonLate && i < len(recs)/4:
				continue
			}
			break
		}
		id := fmt.Sprintf("poison-%d", i)
		m := k.make(r, id)
		m.Topic = e.topic
		m.Headers = []kafka.Header{{Key: hdrID, Value: []byte(id)}, {Key: hdrExpect, Value: []byte(k.reason)}}
		msgs = append(msgs, m)
		want[id] = k.reason
	}
	return msgs, want
}

// throughput publishes msgs, then starts an ingester and returns the time
// from its first flush until it has caught up, and the ingester's CPU time
// (clock ticks) meanwhile.
func (e *env) throughput(msgs []kafka.Message) (time.Duration, int64, *proc) {
	e.t.Helper()
	if err := e.send(msgs); err != nil {
		e.t.Fatal(err)
	}
	in := e.ingester("ingester")
	e.waitProgress(0, time.Minute)
	start, cpu := time.Now(), cpuTicks(in.cmd.Process.Pid)
	e.waitCaughtUp(5*time.Minute, in)
	return time.Since(start), cpuTicks(in.cmd.Process.Pid) - cpu, in
}

// Half of the records are bad, of ten kinds; every bad record reaches the
// DLQ with its reason, the good ones are applied, and the good events/s
// are compared with the same good events alone (three re-keyed copies of
// the sample, published before the ingester starts).
func TestPoisonAtHighRate(t *testing.T) {
	r := &row{Case: "poison messages at a high rate (1 bad record after every good one)"}
	record(t, r)
	recs := rekeyed(t, sampleRecords(t), 3)

	clean := newEnv(t, envOpts{})
	cleanTook, cleanCPU, cin := clean.throughput(clean.messages(recs))
	cin.stop()

	e := newEnv(t, envOpts{})
	msgs, want := e.poisoned(recs)
	took, cpu, in := e.throughput(msgs)
	r.PeakRSS = max(in.peak.Load(), cin.peak.Load())
	in.stop()
	dlq, ex := e.verify(r, recs, want)
	var reasons []string
	for _, k := range poisons(time.Time{}) {
		reasons = append(reasons, fmt.Sprintf("%s %d", k.reason, dlq.ByReason[string(k.reason)]))
	}
	goodRate := float64(len(recs)) / took.Seconds()
	cleanRate := float64(len(recs)) / cleanTook.Seconds()
	r.Injected = fmt.Sprintf("%d bad records among %d good (50%%)", len(want), len(recs))
	perRecord := func(ticks int64, n int) float64 { return float64(ticks) * 1e4 / float64(n) } // µs of CPU
	r.Notes = fmt.Sprintf("all %d in the DLQ with their reason (%s), %d repeats; good events/s %.0f with poison vs %.0f "+
		"clean (%.0f%%; %.0f records/s); ingester CPU %.0f µs per good event with poison, %.0f clean; snapshots: "+
		"%d distinct, %d repeats", dlq.Distinct, strings.Join(reasons, ", "), dlq.Repeats, goodRate, cleanRate,
		100*goodRate/cleanRate, float64(len(msgs))/took.Seconds(), perRecord(cpu, len(recs)), perRecord(cleanCPU, len(recs)),
		ex.Distinct, ex.Repeats)
}

// waitAssigned waits until the processes hold parts partitions between
// them, each at least one.
func waitAssigned(t *testing.T, parts int, procs ...*proc) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		total, each := 0, true
		for _, p := range procs {
			n := p.readStats().Assigned
			total += n
			each = each && n > 0
			if p.exited() {
				t.Fatalf("%s exited:\n%s", p.name, tail(p.log, 20))
			}
		}
		if total == parts && each {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions not assigned to all %d processes within a minute", len(procs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// series formats samples as a Markdown table.
func series(head string, rows []string) string {
	return head + "\n" + strings.Join(rows, "\n") + "\n"
}

// Normal traffic (1,500 events/s), then ten times that for 4 s, then normal
// again, over six re-keyed copies of the sample (104,604 events, 27,024
// users): the lag grows during the burst and drains; the ingester's memory
// stays bounded (bounded queues and batches: the backlog waits in Kafka).
func TestBurst(t *testing.T) {
	e := newEnv(t, envOpts{parts: 4})
	r := &row{Case: "burst: 10× the normal rate for 4 s"}
	record(t, r)
	recs := rekeyed(t, sampleRecords(t), 6)
	msgs := e.messages(recs)
	const normal = 1500.0
	in := e.ingester("ingester")
	waitAssigned(t, e.parts, in)
	phase := atomic.Value{}
	phase.Store("normal")
	type sample struct {
		at        time.Duration
		phase     string
		lag, rss  int64
		published int64
	}
	var samples []sample
	var sent atomic.Int64
	start := time.Now()
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			samples = append(samples, sample{time.Since(start), phase.Load().(string), e.lag(), in.rss(), sent.Load()})
			select {
			case <-stopSampling:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	a, b := int(normal*8), int(normal*8)+int(normal*10*4)
	ctx := context.Background()
	if err := e.sendPaced(ctx, msgs[:a], normal, &sent); err != nil {
		t.Fatal(err)
	}
	rssBefore := in.rss()
	phase.Store("burst")
	burstStart := time.Now()
	if err := e.sendPaced(ctx, msgs[a:b], normal*10, &sent); err != nil {
		t.Fatal(err)
	}
	burstTook := time.Since(burstStart)
	burstEnd := time.Now()
	phase.Store("normal")
	drained := time.Duration(0)
	pubErr := make(chan error, 1)
	go func() { pubErr <- e.sendPaced(ctx, msgs[b:], normal, &sent) }()
	for drained == 0 {
		if l := e.lag(); l >= 0 && l <= int64(normal/2) {
			drained = time.Since(burstEnd)
		}
		if time.Since(burstEnd) > 3*time.Minute {
			t.Fatal("the lag did not drain within 3 minutes of the burst")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	e.waitCaughtUp(2*time.Minute, in)
	close(stopSampling)
	<-sampled
	r.PeakRSS = in.peak.Load()
	in.stop()
	var peakLag int64
	var rows []string
	for i, s := range samples {
		peakLag = max(peakLag, s.lag)
		if i%4 == 0 || s.phase == "burst" {
			rows = append(rows, fmt.Sprintf("| %.2f | %s | %d | %d | %s |", s.at.Seconds(), s.phase, s.published, s.lag, mib(s.rss)))
		}
	}
	v := e.compareProfiles(eventsOf(recs), nil, nil)
	r.Lost, r.Dup = v.Lost, v.Dup
	requireExact(t, v)
	dlq := e.checkDLQ(map[string]stream.Reason{})
	if dlq.Records != 0 {
		t.Errorf("DLQ holds %d records", dlq.Records)
	}
	burstRate := float64(b-a) / burstTook.Seconds()
	r.Injected = fmt.Sprintf("%d events at %.0f/s (asked %.0f/s) amid %.0f/s", b-a, burstRate, normal*10, normal)
	r.Recovered = dur(drained)
	r.Notes = fmt.Sprintf("recovery = lag back under 0.5 s of normal traffic; peak lag %d records; RSS %s before the burst, "+
		"peak (VmHWM) %s: it follows the users cached (%d by the end, bounded by CacheUsers per partition), the backlog "+
		"waits in Kafka; %d events, DLQ %d", peakLag, mib(rssBefore), mib(r.PeakRSS), v.Users, len(recs), dlq.Records)
	if limit := int64(512 << 20); r.PeakRSS > limit {
		t.Errorf("peak RSS %s above %s: memory is not bounded by the queues", mib(r.PeakRSS), mib(limit))
	}
	section("Burst (TestBurst): lag and ingester RSS", fmt.Sprintf("Normal %.0f events/s, burst asked %.0f/s (reached %.0f/s) "+
		"for 4 s, four partitions, one ingester. Every 4th sample outside the burst.\n\n", normal, normal*10, burstRate)+
		series("| t (s) | phase | published | lag (records) | ingester RSS |\n|---|---|---|---|---|", rows))
}

// redis-server is killed (SIGKILL, no shutdown) while the sample streams
// in, and started again on its append-only file. A killed process loses
// nothing it had acknowledged: Redis writes the AOF before it replies, and
// the kernel keeps what was written (appendfsync everysec only bounds what
// a machine crash loses; see DESIGN.md, "Redis Cluster" and durability).
// The ingester sees connection errors, restarts its partitions and goes on.
func TestRedisKilledMidStream(t *testing.T) {
	e := newEnv(t, envOpts{exclusiveRedis: true})
	r := &row{Case: "redis-server SIGKILLed mid-stream (AOF, fsync every second) and restarted"}
	record(t, r)
	recs := sampleRecords(t)
	in := e.ingester("ingester")
	var sent atomic.Int64
	pub := make(chan error, 1)
	go func() { pub <- e.sendPaced(context.Background(), e.messages(recs), 4000, &sent) }()
	e.waitProgress(int64(len(recs)/4), time.Minute)
	at := e.progress()
	start := time.Now()
	testenv.KillRedis(t)
	testenv.StartRedis(t)
	down := time.Since(start)
	after := e.progress()
	r.Recovered = dur(e.waitProgress(after, time.Minute))
	if err := <-pub; err != nil {
		t.Fatal(err)
	}
	e.waitCaughtUp(2*time.Minute, in)
	r.PeakRSS = in.peak.Load()
	in.stop() // the child writes its final counters as it exits
	st := in.readStats()
	dlq, ex := e.verify(r, recs, nil)
	r.Injected = fmt.Sprintf("SIGKILL + start (%s) after %d of %d events; checkpoints covered %d before, %d after",
		dur(down), at, len(recs), at, after)
	r.Notes = fmt.Sprintf("%d records re-read from checkpoints (%d replay-skipped); DLQ %d; snapshots: %d distinct, "+
		"%d repeats, %d differing", st.Consumed-int64(len(recs)), st.Replayed, dlq.Records, ex.Distinct, ex.Repeats, ex.Differing)
}
