package httpserve_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/internal/httpserve"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// A request in flight when the context ends is answered before Serve
// returns nil; the listener is closed afterwards.
func TestServeDrainsInFlightRequests(t *testing.T) {
	ln := listen(t)
	entered, release := make(chan struct{}), make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "done")
	})}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- httpserve.Serve(ctx, srv, func() error { return srv.Serve(ln) }, 5*time.Second) }()
	body := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String())
		if err != nil {
			body <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body <- string(b)
	}()
	<-entered
	cancel()
	time.Sleep(50 * time.Millisecond) // Shutdown is now waiting for the request
	close(release)
	if got := <-body; got != "done" {
		t.Fatalf("in-flight request got %q", got)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("listener still accepting after Serve returned")
	}
}

// A request that outlives the timeout makes Serve close the server and
// return the deadline error.
func TestServeClosesAfterTimeout(t *testing.T) {
	ln := listen(t)
	entered := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done() // ends when Close drops the connection
	})}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- httpserve.Serve(ctx, srv, func() error { return srv.Serve(ln) }, 100*time.Millisecond)
	}()
	go func() {
		if resp, err := http.Get("http://" + ln.Addr().String()); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	cancel()
	select {
	case err := <-served:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Serve = %v, want the shutdown deadline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its shutdown timeout")
	}
}

// When serving fails first, Serve returns that error at once.
func TestServeReturnsServeError(t *testing.T) {
	ln := listen(t)
	ln.Close()
	srv := &http.Server{}
	err := httpserve.Serve(context.Background(), srv, func() error { return srv.Serve(ln) }, time.Second)
	if err == nil || errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve on a closed listener = %v, want its error", err)
	}
}
