// Package stream is the Kafka edge of streamprofile: the versioned clickstream
// event schema and its decoder, the consumer group that runs one processor
// goroutine per assigned partition, the dead-letter queue, per-partition
// event-time watermarks, and the replay producer.
//
// The processing topology is declared in one place (pipeline/topology.go); see
// DESIGN.md at the repository root for the exactly-once argument.
package stream
