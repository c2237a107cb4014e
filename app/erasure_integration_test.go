package app_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/api"
	"github.com/streamprofile/streamprofile/app"
	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/model/trainer"
	"github.com/streamprofile/streamprofile/stream"
	"github.com/streamprofile/streamprofile/stream/source"
)

// apiClient calls a Server's handler with a bearer token.
type apiClient struct {
	t     *testing.T
	h     http.Handler
	token string
}

func (c apiClient) do(method, path string, out any) int {
	c.t.Helper()
	req := httptest.NewRequest(method, path, nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, req)
	if out != nil && rec.Code < 300 {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			c.t.Fatalf("%s %s: %v: %s", method, path, err, rec.Body)
		}
	}
	return rec.Code
}

// erasureTopic is the test's own erasure topic: the topic is shared by
// every role of a deployment, so tests must not share one.
func (e *env) erasureTopic() string { return e.topic + ".erasures" }

// newServe starts the serve role's API over the env's stores.
func (e *env) newServe(t *testing.T, acks []string) apiClient {
	t.Helper()
	e.ensureErasureTopic(t)
	return e.newServeWith(t, acks, nil)
}

// ensureErasureTopic creates the env's erasure topic.
func (e *env) ensureErasureTopic(t *testing.T) {
	t.Helper()
	if err := stream.EnsureTopics(context.Background(), e.brokers, stream.TopicSpec{Name: e.erasureTopic(), Partitions: 1, Compacted: true}); err != nil {
		t.Fatal(err)
	}
}

// newServeWith starts the serve role's API over the env's stores, with
// the configuration changed by mod (when not nil), without creating the
// erasure topic.
func (e *env) newServeWith(t *testing.T, acks []string, mod func(*app.ServeConfig)) apiClient {
	t.Helper()
	token := "test-token-" + e.topic
	opts := e.rdb.Options()
	cfg := app.ServeConfig{
		API:     api.Config{Tokens: []api.TokenSpec{{Name: "tester", SHA256: api.HashToken(token), Scopes: []api.Scope{api.ScopeAdmin}}}},
		Brokers: e.brokers, Redis: app.RedisConfig{Addr: opts.Addr, DB: opts.DB},
		Store:            features.StoreConfig{Prefix: e.prefix, Group: e.group},
		PseudonymKeyFile: e.keyFile, Clock: "stream", ErasureAcks: acks, ErasureTopic: e.erasureTopic(),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := app.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return apiClient{t: t, h: s.API().Handler(), token: token}
}

// allKeys lists every key of the test's Redis database.
func (e *env) allKeys(t *testing.T) []string {
	t.Helper()
	var keys []string
	it := e.rdb.Scan(context.Background(), 0, "*", 1000).Iterator()
	for it.Next(context.Background()) {
		keys = append(keys, it.Val())
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

// A user is looked up, erased through the API, and then nothing of them is
// left in Redis — no key and no value names them — even after their old
// events are replayed; the erasure is announced on profile-erasures and the
// receipt reports completion.
func TestEraseThroughTheAPIRemovesEverything(t *testing.T) {
	e := newEnv(t, 4)
	recs := sampleRecords(t)[:3000]
	// The user with the most events in the slice, plus an anonymous id
	// merged into them.
	count := map[string]int{}
	for _, r := range recs {
		count[r.Event.UserID]++
	}
	user := ""
	for u, n := range count {
		if user == "" || n > count[user] || (n == count[user] && u < user) {
			user = u
		}
	}
	anon := "anon-of-" + user
	last := recs[len(recs)-1].Event.TS
	extra := []stream.Event{
		{Schema: 1, EventID: "erase-a1", Type: stream.TypeView, AnonymousID: anon, TS: last.Add(-time.Minute), ItemID: "x1", Category: "kids.toys"},
		{Schema: 1, EventID: "erase-login", Type: stream.TypeIdentify, UserID: user, AnonymousID: anon, TS: last},
	}
	var extraRecs []source.Record
	for _, ev := range extra {
		b, err := stream.Encode(&ev)
		if err != nil {
			t.Fatal(err)
		}
		extraRecs = append(extraRecs, source.Record{Event: ev, Value: b})
	}
	in, stop := e.startIngester(t)
	publish(t, e.brokers, e.topic, recs)
	e.waitCaughtUp(t, 2*time.Minute)
	publish(t, e.brokers, e.topic, extraRecs[:1])
	e.waitCaughtUp(t, time.Minute)
	publish(t, e.brokers, e.topic, extraRecs[1:])
	for i := 0; i < 3; i++ {
		e.waitCaughtUp(t, time.Minute)
		time.Sleep(200 * time.Millisecond)
	}

	c := e.newServe(t, []string{}) // no trainer or scorer in this test
	var prof api.Profile
	if code := c.do("GET", "/v1/profiles/"+user, &prof); code != 200 {
		t.Fatalf("GET profile: %d", code)
	}
	if prof.Features["views_total"] < 2 || len(prof.LinkedIDs) != 1 {
		t.Fatalf("profile before erasure: views %v linked %v", prof.Features["views_total"], prof.LinkedIDs)
	}
	var byAnon api.Profile
	if code := c.do("GET", "/v1/profiles/"+anon, &byAnon); code != 200 || byAnon.Features["views_total"] != prof.Features["views_total"] {
		t.Fatalf("lookup by the linked anonymous id: %d, views %v", code, byAnon.Features["views_total"])
	}

	before0 := 0
	for _, k := range e.allKeys(t) {
		if strings.Contains(k, user) || strings.Contains(k, anon) {
			before0++
		}
	}
	if before0 < 2 {
		t.Fatalf("before erasure only %d keys name the user or their anonymous id", before0)
	}
	var rec api.Receipt
	if code := c.do("DELETE", "/v1/profiles/"+user, &rec); code != http.StatusAccepted {
		t.Fatalf("DELETE: %d", code)
	}
	if code := c.do("GET", "/v1/profiles/"+user, nil); code != 404 {
		t.Fatalf("GET after erasure: %d, want 404", code)
	}
	mentions := func(when string) {
		t.Helper()
		for _, k := range e.allKeys(t) {
			if strings.Contains(k, user) || strings.Contains(k, anon) {
				t.Fatalf("%s: key %q mentions the erased user", when, k)
			}
			if typ, _ := e.rdb.Type(context.Background(), k).Result(); typ == "string" {
				if v, _ := e.rdb.Get(context.Background(), k).Result(); strings.Contains(v, user) {
					t.Fatalf("%s: value of %q mentions the erased user", when, k)
				}
			}
			if typ, _ := e.rdb.Type(context.Background(), k).Result(); typ == "hash" {
				h, _ := e.rdb.HGetAll(context.Background(), k).Result()
				for f, v := range h {
					if strings.Contains(f, user) || strings.Contains(v, user) {
						t.Fatalf("%s: hash %q mentions the erased user", when, k)
					}
				}
			}
		}
	}
	mentions("after erasure")

	// Replaying all their old events does not rebuild them.
	before := in.Topology().Stats().Erased.Load()
	var theirs []source.Record
	for _, r := range recs {
		if r.Event.UserID == user {
			theirs = append(theirs, r)
		}
	}
	publish(t, e.brokers, e.topic, theirs)
	publish(t, e.brokers, e.topic, extraRecs)
	for i := 0; i < 2; i++ {
		e.waitCaughtUp(t, time.Minute)
		time.Sleep(200 * time.Millisecond)
	}
	if got := in.Topology().Stats().Erased.Load() - before; got < int64(len(theirs)) {
		t.Fatalf("replay: %d events refused as erased, want at least %d", got, len(theirs))
	}
	mentions("after a replay of their events")
	stop()

	var st api.Receipt
	if code := c.do("GET", "/v1/erasures/"+rec.Receipt, &st); code != 200 || st.Status != api.ErasureCompleted {
		t.Fatalf("receipt: %d %+v", code, st)
	}
	if strings.Contains(st.User, user) {
		t.Fatalf("the receipt names the user: %q", st.User)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: e.brokers, Topic: e.erasureTopic(), Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	r.SetOffset(kafka.FirstOffset)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("no erasure record for the receipt on %s: %v", e.erasureTopic(), err)
		}
		if er, err := features.DecodeErasure(m.Value); err == nil && er.Receipt == rec.Receipt {
			if er.User != user || len(er.Linked) != 1 || er.Linked[0] != anon {
				t.Fatalf("erasure record %+v", er)
			}
			break
		}
	}
}

// The trainer follows profile-erasures: after an erasure it holds no
// pending example of the user, and the receipt completes only once it has
// acknowledged.
func TestErasureReachesTheTrainer(t *testing.T) {
	e := newEnv(t, 2)
	recs := sampleRecords(t)[:4000]
	opts := e.rdb.Options()
	tcfg := app.TrainerConfig{
		Brokers: e.brokers, Topic: e.topic + ".examples", Group: "trainer-" + e.topic, CreateTopics: true, Partitions: 2,
		Registry: app.RegistryConfig{Redis: app.RedisConfig{Addr: opts.Addr, DB: opts.DB}, Topic: "-"},
		Trainer:  trainer.Config{PurchaseHorizon: 24 * time.Hour, RepeatHorizon: 48 * time.Hour, AllowedLateness: time.Minute},
		Prefix:   e.prefix, ErasureTopic: e.erasureTopic(),
	}
	tr, err := app.NewTrainer(tcfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(time.Minute):
		}
		tr.Close()
	})

	e.startIngester(t)
	publish(t, e.brokers, e.topic, recs)
	e.waitCaughtUp(t, 2*time.Minute)
	user := recs[len(recs)-1].Event.UserID
	deadline := time.Now().Add(time.Minute)
	for tr.Learner().Holds(user) == 0 {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("trainer stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the trainer never held an example of %s (stats %+v)", user, tr.Learner().Stats())
		}
		time.Sleep(100 * time.Millisecond)
	}
	c := e.newServe(t, []string{"trainer"})
	var rec api.Receipt
	if code := c.do("DELETE", "/v1/profiles/"+user, &rec); code != http.StatusAccepted {
		t.Fatalf("DELETE: %d", code)
	}
	deadline = time.Now().Add(time.Minute)
	for {
		var st api.Receipt
		if code := c.do("GET", "/v1/erasures/"+rec.Receipt, &st); code != 200 {
			t.Fatalf("receipt: %d", code)
		}
		if st.Status == api.ErasureCompleted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("receipt not completed: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := tr.Learner().Holds(user); n != 0 {
		t.Fatalf("after erasure the trainer still holds %d examples of the user", n)
	}
}

// Segment members page through the API with cursors: every member comes
// back, pages never exceed the limit, and nothing loads the whole set.
func TestServeSegmentMembersPaging(t *testing.T) {
	e := newEnv(t, 1)
	c := e.newServe(t, []string{})
	want := map[string]bool{}
	var args []any
	for i := 0; i < 2500; i++ {
		id := fmt.Sprintf("member-%04d", i)
		want[id] = true
		args = append(args, id)
	}
	if err := e.rdb.SAdd(context.Background(), e.prefix+":segidx:{new}", args...).Err(); err != nil {
		t.Fatal(err)
	}
	var list api.SegmentList
	if code := c.do("GET", "/v1/segments", &list); code != 200 {
		t.Fatalf("GET /v1/segments: %d", code)
	}
	found := false
	for _, s := range list.Segments {
		if s.Name == "new" {
			found = s.MemberCount != nil && *s.MemberCount == 2500
		}
	}
	if !found {
		t.Fatalf("segment list: %+v", list)
	}
	got := map[string]bool{}
	cursor, pages := "", 0
	for {
		var page api.MemberPage
		path := "/v1/segments/new/members?limit=100"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		if code := c.do("GET", path, &page); code != 200 {
			t.Fatalf("GET %s: %d", path, code)
		}
		if len(page.Members) > 100 {
			t.Fatalf("page of %d members, limit 100", len(page.Members))
		}
		for _, m := range page.Members {
			got[m] = true
		}
		pages++
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
		if pages > 200 {
			t.Fatal("pagination does not end")
		}
	}
	if len(got) != len(want) {
		t.Fatalf("paged %d distinct members of %d in %d pages", len(got), len(want), pages)
	}
	if code := c.do("GET", "/v1/segments/no_such_segment/members", nil); code != 404 {
		t.Fatalf("unknown segment: %d", code)
	}
}

// records encodes events as input records.
func records(t *testing.T, evs ...stream.Event) []source.Record {
	t.Helper()
	out := make([]source.Record, len(evs))
	for i := range evs {
		b, err := stream.Encode(&evs[i])
		if err != nil {
			t.Fatal(err)
		}
		out[i] = source.Record{Event: evs[i], Value: b}
	}
	return out
}

// views returns n view events of user, a minute apart from at.
func views(user, prefix string, at time.Time, n int) []stream.Event {
	evs := make([]stream.Event, n)
	for i := range evs {
		evs[i] = stream.Event{Schema: 1, EventID: fmt.Sprintf("%s-%d", prefix, i), Type: stream.TypeView, UserID: user,
			TS: at.Add(time.Duration(i) * time.Minute), ItemID: fmt.Sprint("item-", i), Category: "kids.toys"}
	}
	return evs
}

// ingest publishes evs and runs an ingester until they are applied.
func (e *env) ingest(t *testing.T, evs []stream.Event) {
	t.Helper()
	_, stop := e.startIngester(t)
	publish(t, e.brokers, e.topic, records(t, evs...))
	for i := 0; i < 2; i++ {
		e.waitCaughtUp(t, time.Minute)
		time.Sleep(100 * time.Millisecond)
	}
	stop()
}

// mentioning lists the keys whose name, string value or hash fields and
// values contain s.
func (e *env) mentioning(t *testing.T, s string) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	for _, k := range e.allKeys(t) {
		hit := strings.Contains(k, s)
		switch typ, _ := e.rdb.Type(ctx, k).Result(); typ {
		case "string":
			v, _ := e.rdb.Get(ctx, k).Result()
			hit = hit || strings.Contains(v, s)
		case "hash":
			h, _ := e.rdb.HGetAll(ctx, k).Result()
			for f, v := range h {
				hit = hit || strings.Contains(f, s) || strings.Contains(v, s)
			}
		}
		if hit {
			out = append(out, k)
		}
	}
	return out
}

// erasureRecords reads the erasure records of receipt on the env's topic
// (waiting up to wait for the first).
func (e *env) erasureRecords(t *testing.T, receipt string, wait time.Duration) []features.ErasureRecord {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: e.brokers, Topic: e.erasureTopic(), Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	r.SetOffset(kafka.FirstOffset)
	var out []features.ErasureRecord
	for {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		m, err := r.ReadMessage(ctx)
		cancel()
		if err != nil {
			return out
		}
		if er, err := features.DecodeErasure(m.Value); err == nil && er.Receipt == receipt {
			out = append(out, er)
			wait = 2 * time.Second // then read on until the topic is quiet
		}
	}
}

// stepOf returns the receipt's step name.
func stepOf(t *testing.T, r api.Receipt, name string) api.ErasureStep {
	t.Helper()
	for _, s := range r.Steps {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("receipt %+v has no step %s", r, name)
	return api.ErasureStep{}
}

// writeKeys writes a pseudonym key file of id:secret lines (current first)
// and returns its path.
func writeKeys(t *testing.T, keys ...string) string {
	t.Helper()
	var b strings.Builder
	for _, k := range keys {
		id, fill, _ := strings.Cut(k, ":")
		b.WriteString(id + ":" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte(fill), 32)) + "\n")
	}
	path := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// During a key rotation a user has a profile under the old key (written
// before the rotation) and one under the new key (written after it). One
// erasure request erases both, with one receipt and one announcement
// naming both stored ids; a later lookup finds nothing under either key.
func TestEraseDuringKeyRotationErasesUnderEveryKey(t *testing.T) {
	e := newEnv(t, 2)
	const user, other = "rotating-user", "bystander"
	base := time.Date(2024, 6, 1, 9, 0, 0, 0, time.UTC)
	e.keyFile = writeKeys(t, "k1:a")
	e.ingest(t, append(views(user, "old", base, 3), views(other, "other", base, 2)...))
	// Rotation: the new key becomes current, the old one stays for reads.
	e.keyFile = writeKeys(t, "k2:b", "k1:a")
	e.ingest(t, views(user, "new", base.Add(time.Hour), 2))

	ps, _, err := app.Privacy(e.keyFile, true)
	if err != nil {
		t.Fatal(err)
	}
	cands := ps.Candidates(user)
	st := e.store(t)
	for _, c := range cands {
		if _, ok, err := st.LoadOne(context.Background(), c); err != nil || !ok {
			t.Fatalf("before the erasure no profile under %s (%v): the test checks nothing", c, err)
		}
	}
	c := e.newServe(t, []string{})
	var rec api.Receipt
	if code := c.do("DELETE", "/v1/profiles/"+user, &rec); code != http.StatusAccepted {
		t.Fatalf("DELETE: %d", code)
	}
	if code := c.do("GET", "/v1/profiles/"+user, nil); code != http.StatusNotFound {
		t.Fatalf("GET after the erasure: %d, want 404 (a profile under another key survived)", code)
	}
	for _, cand := range cands {
		if _, ok, _ := st.LoadOne(context.Background(), cand); ok {
			t.Fatalf("the profile under %s survived the erasure", cand)
		}
		if keys := e.mentioning(t, cand); len(keys) > 0 {
			t.Fatalf("after the erasure keys mention %s: %v", cand, keys)
		}
	}
	if code := c.do("GET", "/v1/profiles/"+other, nil); code != http.StatusOK {
		t.Fatalf("another user's profile: %d", code)
	}
	var got api.Receipt
	if code := c.do("GET", "/v1/erasures/"+rec.Receipt, &got); code != http.StatusOK || got.Status != api.ErasureCompleted {
		t.Fatalf("receipt: %d %+v", code, got)
	}
	recs := e.erasureRecords(t, rec.Receipt, 20*time.Second)
	if len(recs) != 1 {
		t.Fatalf("%d erasure records for the receipt, want 1", len(recs))
	}
	named := append([]string{recs[0].User}, recs[0].Linked...)
	for _, cand := range cands {
		if !slices.Contains(named, cand) {
			t.Fatalf("the erasure record %+v does not name %s", recs[0], cand)
		}
	}
}

// A second DELETE of an erased user answers 202 with the first erasure's
// receipt (not 404), and sends the erasure announcement that the first
// could not send (the topic did not exist yet); until then the receipt says
// the announcement failed and stays in progress.
func TestRepeatedEraseReturnsTheReceiptAndSendsTheAnnouncementAgain(t *testing.T) {
	e := newEnv(t, 1)
	const user = "erased-twice"
	e.ingest(t, views(user, "v", time.Date(2024, 6, 1, 9, 0, 0, 0, time.UTC), 3))
	// No background retry: only the repeated request sends it again.
	c := e.newServeWith(t, []string{}, func(cfg *app.ServeConfig) { cfg.ErasureRetries = -1 })

	var first api.Receipt
	if code := c.do("DELETE", "/v1/profiles/"+user, &first); code != http.StatusAccepted {
		t.Fatalf("first DELETE: %d", code)
	}
	if first.Status != api.ErasureInProgress || stepOf(t, first, "profile_store").Status != api.StepCompleted {
		t.Fatalf("first receipt: %+v", first)
	}
	if s := stepOf(t, first, "erasure_topic"); s.Status != api.StepFailed || s.At.IsZero() {
		t.Fatalf("the announcement could not be sent, but the receipt says %+v", s)
	}
	var polled api.Receipt
	if code := c.do("GET", "/v1/erasures/"+first.Receipt, &polled); code != http.StatusOK ||
		polled.Status != api.ErasureInProgress || stepOf(t, polled, "erasure_topic").Status != api.StepFailed {
		t.Fatalf("polled receipt: %d %+v", code, polled)
	}
	if code := c.do("GET", "/v1/profiles/"+user, nil); code != http.StatusNotFound {
		t.Fatalf("GET after the erasure: %d", code)
	}

	e.ensureErasureTopic(t)
	var second api.Receipt
	if code := c.do("DELETE", "/v1/profiles/"+user, &second); code != http.StatusAccepted {
		t.Fatalf("second DELETE: %d, want 202 with the receipt", code)
	}
	if second.Receipt != first.Receipt {
		t.Fatalf("second DELETE gave receipt %s, want %s", second.Receipt, first.Receipt)
	}
	if second.Status != api.ErasureCompleted || stepOf(t, second, "erasure_topic").Status != api.StepCompleted {
		t.Fatalf("second receipt: %+v", second)
	}
	recs := e.erasureRecords(t, first.Receipt, 20*time.Second)
	if len(recs) != 1 || recs[0].User != user {
		t.Fatalf("erasure records for the receipt: %+v", recs)
	}
	var third api.Receipt
	if code := c.do("DELETE", "/v1/profiles/"+user, &third); code != http.StatusAccepted || third.Receipt != first.Receipt || third.Status != api.ErasureCompleted {
		t.Fatalf("third DELETE: %d %+v", code, third)
	}
	if recs := e.erasureRecords(t, first.Receipt, 5*time.Second); len(recs) != 1 {
		t.Fatalf("a completed erasure was announced again: %d records", len(recs))
	}
	if keys := e.mentioning(t, user); len(keys) > 0 {
		t.Fatalf("after the announcement keys still mention the user: %v", keys)
	}
	if code := c.do("DELETE", "/v1/profiles/never-seen", nil); code != http.StatusNotFound {
		t.Fatalf("DELETE of an unknown id: %d", code)
	}
}

// An announcement that could not be sent is retried in the background: the
// receipt completes once the topic can be written, without another request.
func TestErasureAnnouncementIsRetried(t *testing.T) {
	e := newEnv(t, 1)
	const user = "announced-later"
	e.ingest(t, views(user, "v", time.Date(2024, 6, 1, 9, 0, 0, 0, time.UTC), 2))
	c := e.newServeWith(t, []string{}, nil)
	var rec api.Receipt
	if code := c.do("DELETE", "/v1/profiles/"+user, &rec); code != http.StatusAccepted {
		t.Fatalf("DELETE: %d", code)
	}
	if s := stepOf(t, rec, "erasure_topic"); s.Status != api.StepFailed {
		t.Fatalf("the announcement could not be sent, but the receipt says %+v", s)
	}
	e.ensureErasureTopic(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st api.Receipt
		if code := c.do("GET", "/v1/erasures/"+rec.Receipt, &st); code != http.StatusOK {
			t.Fatalf("receipt: %d", code)
		}
		if st.Status == api.ErasureCompleted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the announcement was not retried: %+v", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if recs := e.erasureRecords(t, rec.Receipt, 20*time.Second); len(recs) != 1 {
		t.Fatalf("%d erasure records for the receipt, want 1", len(recs))
	}
}
