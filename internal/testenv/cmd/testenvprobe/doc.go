// Command testenvprobe is the readiness and port probe used by
// scripts/testenv.sh. It is not part of streamprofile; it exists so the
// shell script can ask questions a plain TCP check cannot answer.
//
// Usage:
//
//	testenvprobe free PORT...
//	    Exits 0 when every PORT can be bound on 127.0.0.1 right now, 1 when
//	    at least one cannot (in use, or bound without listening).
//
//	testenvprobe kafka [-timeout 120s] [-pid PID] ADDR
//	    Waits until the Kafka broker at ADDR answers a metadata request,
//	    names an active controller, can create the probe topic
//	    "__testenv_probe" and accepts a record produced to it with acks=all.
//	    Exits 0 when ready, 1 with the last error when the timeout passes,
//	    and 2 at once when PID (the broker's process) has exited.
package main
