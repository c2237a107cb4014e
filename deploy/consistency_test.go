package deploy

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/streamprofile/streamprofile/app"
	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/pipeline"
	"github.com/streamprofile/streamprofile/stream"
)

// TestTopicsAndPartitions: the compose stack and the k8s manifests agree on
// the topics, the partition count and the consumer groups, and the
// autoscaler never exceeds the partition count.
func TestTopicsAndPartitions(t *testing.T) {
	c := loadCompose(t)
	m := loadK8s(t)
	initCmd := strings.Join(c.Services["topic-init"].Command, " ")

	pm := regexp.MustCompile(`--partitions (\d+)`).FindStringSubmatch(initCmd)
	if pm == nil {
		t.Fatal("topic-init: no --partitions N")
	}
	partitions := pm[1]
	ingest := c.Services["ingest"].Environment
	kafka := c.Services["kafka"].Environment
	k8sIngest := &m.Deployments["ingest"].Spec.Template.Spec.Containers[0]
	k8sParts, _ := m.flagValue(k8sIngest, "partitions")
	for what, got := range map[string]string{
		"compose ingest STREAMPROFILE_PARTITIONS": ingest["STREAMPROFILE_PARTITIONS"],
		"compose kafka KAFKA_NUM_PARTITIONS":      kafka["KAFKA_NUM_PARTITIONS"],
		"k8s ingest --partitions":                 k8sParts,
		"KEDA maxReplicaCount":                    strconv.Itoa(*m.ScaledObjects["ingest"].Spec.MaxReplicaCount),
	} {
		if got != partitions {
			t.Errorf("%s = %q, want topic-init's partition count %s", what, got, partitions)
		}
	}
	if n, _ := strconv.Atoi(partitions); c.Services["ingest"].replicas() > n {
		t.Errorf("compose runs %d ingest replicas for %s partitions", c.Services["ingest"].replicas(), partitions)
	}

	created := slices.Sorted(maps.Keys(topicInitTopics(t, c)))
	topic := ingest["STREAMPROFILE_TOPIC"]
	for _, want := range []string{topic, topic + ".dlq", c.Services["replay"].Environment["STREAMPROFILE_TOPIC"]} {
		if !slices.Contains(created, want) {
			t.Errorf("topic-init creates %v, not %q", created, want)
		}
	}
	if v, _ := m.flagValue(k8sIngest, "topic"); v != topic {
		t.Errorf("k8s ingest --topic %q, compose %q", v, topic)
	}
	if kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] != "false" {
		t.Error("kafka: auto topic creation is on, so a typo in a topic name creates a topic instead of failing")
	}

	for _, role := range []struct{ compose, k8s string }{{"ingest", "ingest"}, {"trainer", "trainer"}} {
		cg := c.Services[role.compose].Environment["STREAMPROFILE_GROUP"]
		kg, _ := m.flagValue(&m.Deployments[role.k8s].Spec.Template.Spec.Containers[0], "group")
		if cg == "" || cg != kg {
			t.Errorf("%s consumer group: compose %q, k8s %q", role.compose, cg, kg)
		}
	}
	if c.Services["ingest"].Environment["STREAMPROFILE_GROUP"] == c.Services["trainer"].Environment["STREAMPROFILE_GROUP"] {
		t.Error("ingest and trainer share a consumer group: each would see only part of the stream")
	}
}

// TestServiceNames: every role has its own OTEL_SERVICE_NAME, the same in
// compose and k8s, so traces group by role wherever they come from.
func TestServiceNames(t *testing.T) {
	c := loadCompose(t)
	m := loadK8s(t)
	seen := map[string]string{}
	for _, name := range []string{"ingest", "trainer", "score", "serve"} {
		cn := c.Services[name].Environment["OTEL_SERVICE_NAME"]
		kn := m.containerEnv(&m.Deployments[name].Spec.Template.Spec.Containers[0])["OTEL_SERVICE_NAME"]
		if cn != "streamprofile-"+name || kn != cn {
			t.Errorf("%s: OTEL_SERVICE_NAME compose %q, k8s %q, want streamprofile-%s in both", name, cn, kn, name)
		}
		if other, dup := seen[cn]; dup {
			t.Errorf("%s and %s share OTEL_SERVICE_NAME %q", name, other, cn)
		}
		seen[cn] = name
	}
}

// topicConf is how a topic is created: partitions and cleanup policy.
type topicConf struct {
	Partitions int
	Compacted  bool
}

func (c topicConf) String() string {
	s := fmt.Sprintf("%d partitions", c.Partitions)
	if c.Partitions == 1 {
		s = "1 partition"
	}
	if c.Compacted {
		s += ", compacted"
	}
	return s
}

// topicLoopRE matches a shell loop that creates topics, as compose's
// topic-init and the README write it:
//
//	for topic in a b c; do
//	  kafka-topics.sh ... --create ... --topic "$topic" --partitions N [--config cleanup.policy=compact]
//	done
var (
	topicLoopRE       = regexp.MustCompile(`(?s)for topic in ([^;\n]+); do(.*?)\bdone\b`)
	topicLoopVarRE    = regexp.MustCompile(`--topic "\$\$?topic"`) // $$ is compose's escape
	topicPartitionsRE = regexp.MustCompile(`--partitions (\d+)`)
)

// parseTopicLoops returns the topics created by the `for topic in` loops of
// script. A loop whose body is not a kafka-topics.sh --create of "$topic"
// with --partitions is an error.
func parseTopicLoops(script string) (map[string]topicConf, error) {
	out := map[string]topicConf{}
	for _, m := range topicLoopRE.FindAllStringSubmatch(script, -1) {
		body := m[2]
		if !strings.Contains(body, "kafka-topics.sh") || !strings.Contains(body, "--create") ||
			!topicLoopVarRE.MatchString(body) {
			return nil, fmt.Errorf("loop over %q: not a kafka-topics.sh --create --topic \"$topic\"", m[1])
		}
		pm := topicPartitionsRE.FindStringSubmatch(body)
		if pm == nil {
			return nil, fmt.Errorf("loop over %q: no --partitions N", m[1])
		}
		n, _ := strconv.Atoi(pm[1])
		conf := topicConf{Partitions: n, Compacted: strings.Contains(body, "cleanup.policy=compact")}
		for _, name := range strings.Fields(m[1]) {
			if prev, dup := out[name]; dup {
				return nil, fmt.Errorf("topic %s created twice (%v, %v)", name, prev, conf)
			}
			out[name] = conf
		}
	}
	return out, nil
}

// topicInitTopics is what compose's topic-init service creates.
func topicInitTopics(t *testing.T, c *composeFile) map[string]topicConf {
	t.Helper()
	got, err := parseTopicLoops(strings.Join(c.Services["topic-init"].Command, " "))
	if err != nil {
		t.Fatalf("topic-init: %v", err)
	}
	if len(got) == 0 {
		t.Fatal("topic-init: no `for topic in ...; do kafka-topics.sh ... done` loop")
	}
	return got
}

// roleTopics is every topic the roles read or write, as the code reports
// it: the Topics() of the ingest, score and train roles (what each creates
// with --create-topics) built with compose's settings, plus the erasure
// topic that serve writes and the trainer also follows and the topic replay
// publishes to. Building a role connects to nothing (Kafka and Redis
// clients dial lazily), so no services are needed.
func roleTopics(t *testing.T, c *composeFile) map[string]topicConf {
	t.Helper()
	env := func(service, key string) string { return c.Services[service].Environment[key] }
	brokers := []string{env("ingest", "STREAMPROFILE_BROKERS")}
	redis := app.RedisConfig{Addr: env("ingest", "STREAMPROFILE_REDIS")}
	partitions, err := strconv.Atoi(env("ingest", "STREAMPROFILE_PARTITIONS"))
	if err != nil {
		t.Fatalf("compose ingest STREAMPROFILE_PARTITIONS: %v", err)
	}

	byRole := map[string][]stream.TopicSpec{}
	in, err := app.NewIngester(app.IngestConfig{Brokers: brokers, Redis: redis, Partitions: partitions,
		Pipeline: pipeline.Config{Topic: env("ingest", "STREAMPROFILE_TOPIC")}})
	if err != nil {
		t.Fatalf("building the ingest role: %v", err)
	}
	byRole["ingest"] = in.Topics()
	in.Close()
	sc, err := app.NewScorer(app.ScoreConfig{Brokers: brokers, Redis: redis})
	if err != nil {
		t.Fatalf("building the score role: %v", err)
	}
	byRole["score"] = sc.Topics()
	sc.Close()
	tr, err := app.NewTrainer(app.TrainerConfig{Brokers: brokers, Registry: app.RegistryConfig{Redis: redis}})
	if err != nil {
		t.Fatalf("building the train role: %v", err)
	}
	byRole["train"] = tr.Topics()
	tr.Close()
	// serve announces erasures on features.ErasureTopic; score and train
	// create it compacted with one partition.
	byRole["serve"] = []stream.TopicSpec{{Name: features.ErasureTopic, Partitions: 1, Compacted: true}}
	byRole["replay"] = []stream.TopicSpec{{Name: env("replay", "STREAMPROFILE_TOPIC"), Partitions: partitions}}

	out := map[string]topicConf{}
	from := map[string]string{}
	for _, role := range slices.Sorted(maps.Keys(byRole)) {
		for _, s := range byRole[role] {
			conf := topicConf{Partitions: s.Partitions, Compacted: s.Compacted}
			if prev, ok := out[s.Name]; ok && prev != conf {
				t.Errorf("topic %s: %s wants %v, %s wants %v", s.Name, from[s.Name], prev, role, conf)
				continue
			}
			out[s.Name], from[s.Name] = conf, role
		}
	}
	return out
}

// diffTopics reports the differences of got from want, naming them.
func diffTopics(t *testing.T, what string, got, want map[string]topicConf) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[name]; !ok {
			t.Errorf("%s: topic %s (%v) missing", what, name, want[name])
		} else if g != want[name] {
			t.Errorf("%s: topic %s has %v, want %v", what, name, g, want[name])
		}
	}
	for _, name := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: topic %s (%v) is used by no role", what, name, got[name])
		}
	}
}

// TestTopicsOfTheRoles: compose's topic-init creates exactly the topics the
// roles use, with the partition count and cleanup policy the roles would
// create them with. Compose and k8s configure the roles alike
// (TestTopicsAndPartitions), so these are the topics a cluster needs.
func TestTopicsOfTheRoles(t *testing.T) {
	c := loadCompose(t)
	diffTopics(t, "compose topic-init", topicInitTopics(t, c), roleTopics(t, c))
}

// readmeTopicRowRE matches a row of the README's topic table:
// | `name` | partitions | delete or compact | ...
var readmeTopicRowRE = regexp.MustCompile("(?m)^\\s*\\| `([^`]+)` \\| (\\d+) \\| (delete|compact) \\|")

// TestTopicsDocumented: the Kubernetes prerequisites of deploy/README.md
// (the topic table and the kafka-topics.sh loops) and the comment of
// deploy/k8s/kustomization.yaml name the topics compose's topic-init
// creates, which TestTopicsOfTheRoles ties to the code.
func TestTopicsDocumented(t *testing.T) {
	want := topicInitTopics(t, loadCompose(t))

	readme := string(readRepoFile(t, "deploy/README.md"))
	start := strings.Index(readme, "\n## Kubernetes\n")
	if start < 0 {
		t.Fatal("deploy/README.md: no \"## Kubernetes\" section")
	}
	section := readme[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	table := map[string]topicConf{}
	for _, m := range readmeTopicRowRE.FindAllStringSubmatch(section, -1) {
		n, _ := strconv.Atoi(m[2])
		table[m[1]] = topicConf{Partitions: n, Compacted: m[3] == "compact"}
	}
	diffTopics(t, "deploy/README.md Kubernetes topic table", table, want)
	loops, err := parseTopicLoops(section)
	if err != nil {
		t.Errorf("deploy/README.md Kubernetes section: %v", err)
	}
	diffTopics(t, "deploy/README.md Kubernetes `for topic in` kafka-topics.sh loops", loops, want)

	// The leading comment of kustomization.yaml: every topic named there.
	words := map[string]bool{}
	for line := range strings.Lines(string(readRepoFile(t, k8sDir+"/kustomization.yaml"))) {
		if !strings.HasPrefix(line, "#") {
			break
		}
		for _, w := range strings.FieldsFunc(line, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_')
		}) {
			words[strings.TrimRight(w, ".")] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if !words[name] {
			t.Errorf("%s/kustomization.yaml: the prerequisites comment does not name topic %s", k8sDir, name)
		}
	}
}
