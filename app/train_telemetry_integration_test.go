package app_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/app"
	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/internal/testenv"
	"github.com/streamprofile/streamprofile/stream"
)

// TestTrainRoleTelemetry runs the train role under its admin server on real
// Kafka and Redis: /readyz turns ready once the trainer has caught up with
// the snapshot topic, and /metrics carries the trainer's statistics as the
// contract's metrics (examples learned, pending, prequential AUC) and the
// snapshot topic's lag.
func TestTrainRoleTelemetry(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.Topic(t, brokers, 1)
	rdb := testenv.RedisDB(t)
	spec := trainSpec{Brokers: brokers, Topic: topic, Group: "g-" + topic, Redis: rdb.Options().Addr, DB: rdb.Options().DB}
	snaps := snapshotsOf(t)[:3000]
	// A late view moves the watermark past every horizon: labels mature.
	ts := snaps[len(snaps)-1].TS.Add(49 * time.Hour)
	snaps = append(snaps, features.Snapshot{Version: 1, ID: "late", User: "late", TS: ts, Type: "view",
		Features: map[string]float64{"last_seen": float64(ts.Unix())}})
	msgs := make([]kafka.Message, len(snaps))
	for i := range snaps {
		b, err := snaps[i].Encode()
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = kafka.Message{Topic: topic, Key: []byte(snaps[i].User), Value: b}
	}
	prod, err := stream.NewProducer(stream.ProducerConfig{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := prod.Send(ctx, msgs...); err != nil {
		t.Fatal(err)
	}

	tr, err := app.NewTrainer(trainConfig(spec))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	admin, err := app.NewAdmin(app.AdminConfig{Addr: "127.0.0.1:0", MaxLag: 0})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.ServeTrainer(runCtx, tr, admin) }()
	base := waitAddr(t, admin)
	for {
		code, body := httpGet(t, base+"/readyz")
		if code == http.StatusOK && tr.Stats().Snapshots == int64(len(msgs)) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("trainer not ready and caught up: /readyz %d %s, %d of %d snapshots", code, body, tr.Stats().Snapshots, len(msgs))
		case <-time.After(100 * time.Millisecond):
		}
	}
	_, text := httpGet(t, base+"/metrics")
	if v, ok := parseMetrics(text)[fmt.Sprintf(`streamprofile_consumer_lag{partition="0",topic=%q}`, topic)]; !ok || v != 0 {
		t.Errorf("snapshot topic lag %v (exposed %v), want 0", v, ok)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("train role: %v", err)
	}
	// The final export happened when the role stopped.
	h, err := admin.Handler()
	if err != nil {
		t.Fatal(err)
	}
	_, text = get(t, h, "/metrics")
	m := parseMetrics(text)
	st := tr.Stats()
	var trained int64
	for _, ts := range st.Tasks {
		trained += ts.Trained
	}
	if trained == 0 {
		t.Fatal("the trainer learned nothing: the test data does not exercise the metrics")
	}
	if got := m["streamprofile_trainer_examples_total"]; got != float64(trained) {
		t.Errorf("trainer_examples_total %v, want %d", got, trained)
	}
	if got := m["streamprofile_trainer_pending_examples"]; got != float64(st.Pending) {
		t.Errorf("trainer_pending_examples %v, want %d", got, st.Pending)
	}
	t.Logf("trained %d, pending %d, champion v%d; exported: examples %v, pending %v, champion AUCs %v",
		trained, st.Pending, st.Champion, m["streamprofile_trainer_examples_total"], m["streamprofile_trainer_pending_examples"], aucSeries(m))
	for task, ts := range st.Tasks {
		if mm, ok := ts.Models["champion"]; ok && !isNaN(float64(mm.AUC)) {
			series := fmt.Sprintf(`streamprofile_model_prequential_auc{model="champion",task=%q}`, task)
			if got := m[series]; got != float64(mm.AUC) {
				t.Errorf("%s = %v, want %v", series, got, mm.AUC)
			}
		}
	}
}

func isNaN(f float64) bool { return f != f }

func aucSeries(m map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if len(k) > 35 && k[:35] == "streamprofile_model_prequential_auc" {
			out[k[35:]] = v
		}
	}
	return out
}
