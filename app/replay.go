package app

import (
	"context"
	"errors"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamprofile/streamprofile/internal/progress"
	"github.com/streamprofile/streamprofile/observability"
	"github.com/streamprofile/streamprofile/stream"
	"github.com/streamprofile/streamprofile/stream/source"
)

// ReplayConfig configures the replay role. Every field states its default.
type ReplayConfig struct {
	// Brokers of Kafka. Required.
	Brokers []string
	// Data path or embedded:<name>. Default the bundled REES46 sample.
	Data string
	// Format: jsonl, rees46 or cdnow. Default from the file name.
	Format string
	// Topic to publish to. Default "clickstream".
	Topic string
	// Speed: 0 max, else a multiple of real time. Default 0.
	Speed float64
	// Limit on records (0 all). Default 0.
	Limit int64
	// Until stops before this event time (zero: none).
	Until time.Time
	// SortByTime replays in event-time order instead of file order
	// (always on for CDNOW, whose log is ordered by customer). Default
	// false.
	SortByTime bool
	// CreateTopic creates Topic when missing, with Partitions. Default
	// false.
	CreateTopic bool
	// Partitions for a created topic. Default 6.
	Partitions int
	// Progress receives progress output. Default os.Stderr.
	Progress io.Writer
	// Tracing, when set, starts a trace per record: a producer span
	// "send <topic>" (recorded when the sampler samples it) whose context
	// goes into the record's headers, so the trace runs from the replayed
	// click through ingest to what it causes. Default nil: no headers.
	Tracing trace.TracerProvider
}

// RunReplay publishes a dataset to Kafka.
func RunReplay(ctx context.Context, cfg ReplayConfig) (stream.ReplayStats, error) {
	if len(cfg.Brokers) == 0 {
		return stream.ReplayStats{}, errors.New("replay: no Kafka brokers (set --brokers or STREAMPROFILE_BROKERS)")
	}
	if cfg.Data == "" {
		cfg.Data = DefaultData
	}
	if cfg.Topic == "" {
		cfg.Topic = "clickstream"
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 6
	}
	if cfg.Progress == nil {
		cfg.Progress = os.Stderr
	}
	format := detectFormat(strings.TrimPrefix(cfg.Data, source.EmbeddedPrefix))
	if cfg.Format != "" {
		f, err := source.ParseFormat(cfg.Format)
		if err != nil {
			return stream.ReplayStats{}, err
		}
		format = f
	}
	rd, closer, err := source.Open(format, cfg.Data)
	if err != nil {
		return stream.ReplayStats{}, err
	}
	defer closer.Close()
	if cfg.CreateTopic {
		if err := stream.EnsureTopics(ctx, cfg.Brokers, stream.TopicSpec{Name: cfg.Topic, Partitions: cfg.Partitions}); err != nil {
			return stream.ReplayStats{}, err
		}
	}
	p, err := stream.NewProducer(stream.ProducerConfig{Brokers: cfg.Brokers})
	if err != nil {
		return stream.ReplayStats{}, err
	}
	defer p.Close()
	total := countRecords(format, cfg.Data)
	if cfg.Limit > 0 && cfg.Limit < total {
		total = cfg.Limit
	}
	bar := progress.New("replay", total, progress.Options{Out: cfg.Progress})
	var last int64
	src, err := replayOrder(format, rd, cfg.SortByTime)
	if err != nil {
		return stream.ReplayStats{}, err
	}
	st, err := stream.Replay(ctx, p, src, stream.ReplayConfig{
		Topic: cfg.Topic, Speed: cfg.Speed, Limit: cfg.Limit, Until: cfg.Until,
		Headers:  ReplayHeaders(cfg.Tracing, cfg.Topic),
		Progress: func(n int64) { bar.Add(n - last); last = n },
	})
	bar.Done()
	return st, err
}

// ReplayHeaders returns the stream.ReplayConfig.Headers of a replay to
// topic traced by tp: each record gets a new trace, whose root is a
// producer span "send <topic>" ended when the record is handed to the
// producer, and carries its W3C context (traceparent, sampled flag
// included, so the ingester follows the sampling decision). An unsampled
// record costs one non-recording span and one header. With tp nil or a
// no-op provider it returns nil: no headers, no cost.
func ReplayHeaders(tp trace.TracerProvider, topic string) func(*stream.ReplayRecord) []kafka.Header {
	if !observability.NewTracer(observability.TracerConfig{Provider: tp}).Enabled() {
		return nil
	}
	tr := tp.Tracer(observability.ScopeName)
	name := "send " + topic
	return func(rec *stream.ReplayRecord) []kafka.Header {
		ctx, span := tr.Start(context.Background(), name, trace.WithSpanKind(trace.SpanKindProducer), trace.WithNewRoot())
		if span.IsRecording() {
			span.SetAttributes(semconv.MessagingSystemKafka, semconv.MessagingOperationTypeSend,
				semconv.MessagingDestinationName(topic), semconv.MessagingMessageBodySize(len(rec.Value)))
			if !rec.Time.IsZero() {
				span.SetAttributes(observability.AttrEventTime.Int64(rec.Time.UnixMilli()))
			}
		}
		h := make([]kafka.Header, 0, 2)
		observability.InjectHeaders(ctx, &h)
		span.End()
		return h
	}
}

// timeSorted replays a dataset in event-time order: it reads every record
// first (stable, so equal times keep file order). CDNOW's transaction log
// is ordered by customer, not time; replayed in file order nearly every
// purchase would be older than its partition's watermark.
type timeSorted struct {
	recs []stream.ReplayRecord
	errs []error
	i    int
}

func sortByTime(src stream.ReplaySource) (*timeSorted, error) {
	ts := &timeSorted{}
	for {
		r, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var skip *stream.SkipError
		if errors.As(err, &skip) {
			ts.errs = append(ts.errs, err)
			continue
		}
		if err != nil {
			return nil, err
		}
		ts.recs = append(ts.recs, r)
	}
	sort.SliceStable(ts.recs, func(i, j int) bool { return ts.recs[i].Time.Before(ts.recs[j].Time) })
	return ts, nil
}

func (t *timeSorted) Next() (stream.ReplayRecord, error) {
	if len(t.errs) > 0 {
		err := t.errs[0]
		t.errs = t.errs[1:]
		return stream.ReplayRecord{}, err
	}
	if t.i >= len(t.recs) {
		return stream.ReplayRecord{}, io.EOF
	}
	r := t.recs[t.i]
	t.i++
	return r, nil
}

// replayOrder returns the source to replay: in event-time order for CDNOW
// (or when sortByTime is set), in file order otherwise.
func replayOrder(format source.Format, rd source.Reader, sortByTimeFlag bool) (stream.ReplaySource, error) {
	var src stream.ReplaySource = replaySource{rd}
	if format == source.CDNOW || sortByTimeFlag {
		return sortByTime(src)
	}
	return src, nil
}
