package deploy

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
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

	tm := regexp.MustCompile(`for topic in ([^;]+);`).FindStringSubmatch(initCmd)
	if tm == nil {
		t.Fatal("topic-init: no `for topic in ...;` loop")
	}
	created := strings.Fields(tm[1])
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
