// Package testenv connects streamprofile's integration tests to the real
// services started by scripts/testenv.sh: an Apache Kafka 4.x broker (KRaft),
// a standalone redis-server and a 3-master Redis Cluster.
//
// # Running
//
// scripts/test.sh is the test command: it starts the services, exports their
// addresses and runs `go test -race ./...`. To run a single package against
// services that stay up:
//
//	scripts/testenv.sh up
//	eval "$(scripts/testenv.sh env)"
//	go test -race ./stream/...
//	scripts/testenv.sh down
//
// The helpers read the addresses from the environment (EnvKafka, EnvRedis,
// EnvRedisCluster). When one is unset the test is skipped with a message
// naming scripts/test.sh, unless STREAMPROFILE_REQUIRE_REAL=1 (which
// scripts/test.sh and so CI set): then the test fails, so that CI never
// passes by skipping.
//
// # Isolation
//
// Tests in several packages run at once against the same services, so:
//   - Topic creates a topic with a unique name per call and deletes it when
//     the test ends.
//   - RedisDB gives each test a Redis database number of its own (the server
//     has 256; database 0 is never handed out). The number is reserved with a
//     file lock across test binaries, flushed before the test and again after
//     it, so a test sees an empty keyspace and may use any key names,
//     FLUSHDB and SCAN included.
//   - RedisClusterClient gives each test a unique key prefix (Redis Cluster
//     has only database 0) and deletes the prefix's keys when the test ends.
//
// # Fault tests
//
// A test that stops or restarts a service calls ExclusiveKafka or
// ExclusiveRedis instead of Kafka or Redis. Every use of a service holds a
// shared lock on it for the test's duration, the Exclusive helpers hold it
// exclusively, so a fault test waits until no other test (in any package)
// uses the service, and other tests wait while a fault test runs. Within the
// exclusive test StopKafka, KillKafka, StartKafka and RestartKafka (and the
// Redis counterparts) run scripts/testenv.sh; when the test ends the service
// is started again if the test left it stopped. A test must not call Kafka
// and then ExclusiveKafka: that fails at once with ErrSelfDeadlock.
package testenv
