// Package app runs streamprofile's roles (ingest, replay, demo, …) from
// their configurations. cmd/streamprofile only parses flags and calls it.
package app
