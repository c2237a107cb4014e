package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamprofile/streamprofile/app"
	"github.com/streamprofile/streamprofile/observability"
)

// TestTelemetryThroughRealKafka replays a slice of the real sample, traced,
// into real Kafka and runs the ingest role with its admin server on real
// Redis:
//
//   - every profile-examples record carries the trace of the replayed click
//     it came from: replay span → consume span → emit span, whose context
//     is in the snapshot's headers (one trace id end to end);
//   - /readyz answers 503 before the member has joined and caught up, and
//     200 once it has;
//   - /metrics shows the pipeline's counters with the replay's numbers, zero
//     lag, and the latency and flush histograms observed.
func TestTelemetryThroughRealKafka(t *testing.T) {
	const n = 120
	e := newEnv(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())), sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())

	st, err := app.RunReplay(ctx, app.ReplayConfig{Brokers: e.brokers, Topic: e.topic, Limit: n, Tracing: tp, Progress: io.Discard})
	if err != nil || st.Published != n {
		t.Fatalf("replay: %+v, %v", st, err)
	}

	admin, err := app.NewAdmin(app.AdminConfig{Addr: "127.0.0.1:0", MaxLag: 0})
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.ingestConfig()
	cfg.Telemetry = app.Telemetry{Tracing: tp, Admin: admin}
	in, err := app.NewIngester(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	h, err := admin.Handler()
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, h, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not joined") {
		t.Errorf("/readyz before the ingester runs: %d %s, want 503 naming the unjoined group", code, body)
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- admin.Serve(runCtx, in.Run) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("ingest: %v", err)
		}
	}()
	base := waitAddr(t, admin)
	var ready readyReport
	for {
		code, body := httpGet(t, base+"/readyz")
		if err := json.Unmarshal([]byte(body), &ready); err != nil {
			t.Fatalf("/readyz body %q: %v", body, err)
		}
		if code == http.StatusOK {
			break
		}
		if code != http.StatusServiceUnavailable || ready.Status != "not ready" {
			t.Fatalf("/readyz: %d %s", code, body)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("/readyz never turned ready; last %s", body)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if got := checkNames(ready); got != "partitions,redis" {
		t.Errorf("/readyz checks %s, want partitions,redis", got)
	}
	e.waitCaughtUp(t, time.Minute)

	// One trace from the replayed click to the snapshot record.
	spans := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		spans[s.SpanContext().SpanID()] = s
	}
	snaps := readTopic(t, ctx, e.brokers, e.topic+".examples", 2)
	if len(snaps) == 0 {
		t.Fatal("no snapshot records")
	}
	for _, m := range snaps {
		sc := trace.SpanContextFromContext(observability.ExtractHeaders(context.Background(), m.Headers))
		emit, ok := spans[sc.SpanID()]
		if !ok || emit.Name() != observability.SpanEmit {
			t.Fatalf("snapshot at %d/%d carries %v, not an emit span", m.Partition, m.Offset, sc)
		}
		consume, ok := spans[emit.Parent().SpanID()]
		if !ok || consume.Name() != "process "+e.topic {
			t.Fatalf("emit span's parent %v is not a consume span", emit.Parent())
		}
		replay, ok := spans[consume.Parent().SpanID()]
		if !ok || replay.Name() != "send "+e.topic || replay.SpanKind() != trace.SpanKindProducer || !consume.Parent().IsRemote() {
			t.Fatalf("consume span's parent %v is not the replay's producer span", consume.Parent())
		}
		if replay.SpanContext().TraceID() != sc.TraceID() || replay.Parent().IsValid() {
			t.Fatalf("replay span %v is not the root of the snapshot's trace %v", replay.SpanContext(), sc.TraceID())
		}
	}

	// The pipeline's counters after the replay.
	stats := in.Topology().Stats()
	_, text := httpGet(t, base+"/metrics")
	m := parseMetrics(text)
	topicLabel := fmt.Sprintf(`{topic=%q}`, e.topic)
	for series, want := range map[string]float64{
		"streamprofile_events_consumed_total" + topicLabel:                          n,
		"streamprofile_events_valid_total":                                          float64(stats.Valid.Load()),
		"streamprofile_events_applied_total":                                        float64(stats.Applied.Load()),
		"streamprofile_events_deduplicated_total":                                   0,
		fmt.Sprintf(`streamprofile_consumer_lag{partition="0",topic=%q}`, e.topic):  0,
		fmt.Sprintf(`streamprofile_consumer_lag{partition="1",topic=%q}`, e.topic):  0,
		`streamprofile_e2e_latency_seconds_count{output="snapshot",stage="ingest"}`: float64(len(snaps)),
		`streamprofile_e2e_latency_seconds_count{output="profile",stage="ingest"}`:  float64(stats.Applied.Load()),
	} {
		got, ok := m[series]
		if !ok {
			t.Errorf("/metrics has no %s", series)
			continue
		}
		if got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if v := m["streamprofile_events_valid_total"]; v < n*9/10 {
		t.Errorf("valid %v of %d replayed records of the real sample", v, n)
	}
	if v := m["streamprofile_redis_flush_seconds_count"]; v < 1 || m["streamprofile_redis_flush_users_sum"] < 1 {
		t.Errorf("flush histograms: %v flushes, %v users", v, m["streamprofile_redis_flush_users_sum"])
	}
	if p99 := m[`streamprofile_e2e_latency_seconds_bucket{output="profile",stage="ingest",le="+Inf"}`]; p99 != m[`streamprofile_e2e_latency_seconds_count{output="profile",stage="ingest"}`] {
		t.Errorf("+Inf bucket %v differs from the count", p99)
	}
}

type readyReport struct {
	Status string `json:"status"`
	Checks []struct {
		Name string `json:"name"`
		OK   bool   `json:"ok"`
	} `json:"checks"`
}

func checkNames(r readyReport) string {
	var names []string
	for _, c := range r.Checks {
		names = append(names, c.Name)
	}
	return strings.Join(names, ",")
}

// waitAddr waits until the admin server listens and returns its base URL.
func waitAddr(t *testing.T, a *app.Admin) string {
	t.Helper()
	for i := 0; i < 500; i++ {
		if addr := a.Addr(); addr != "" {
			return "http://" + addr
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("admin server did not listen")
	return ""
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &recorder{header: http.Header{}}
	h.ServeHTTP(w, req)
	return w.code, w.body.String()
}

type recorder struct {
	header http.Header
	code   int
	body   strings.Builder
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(code int) { r.code = code }

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// parseMetrics reads the Prometheus text format into series → value, the
// series written as name{labels} exactly as exposed (labels sorted by the
// client library).
func parseMetrics(text string) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out
}

// readTopic reads every record of topic's partitions up to their high
// watermarks.
func readTopic(t *testing.T, ctx context.Context, brokers []string, topic string, partitions int) []kafka.Message {
	t.Helper()
	var out []kafka.Message
	for p := 0; p < partitions; p++ {
		conn, err := kafka.DialLeader(ctx, "tcp", brokers[0], topic, p)
		if err != nil {
			t.Fatal(err)
		}
		last, err := conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		if last == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				t.Fatalf("reading %s/%d: %v", topic, p, err)
			}
			out = append(out, m)
			if m.Offset+1 >= last {
				break
			}
		}
		r.Close()
	}
	return out
}
