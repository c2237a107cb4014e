package api_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/api"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "streamprofile test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// serveOn starts Serve on a loopback port and returns its base URL and a
// stop function that cancels and waits, returning Serve's error.
func serveOn(t *testing.T, srv *api.Server, scheme string) (string, func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	return scheme + "://" + ln.Addr().String(), func() error {
		cancel()
		return <-done
	}
}

func TestServeTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	e := newEnv(t, func(c *api.Config) { c.TLSCertFile, c.TLSKeyFile = certFile, keyFile })
	base, stop := serveOn(t, e.srv, "https")
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()

	req, _ := http.NewRequest("GET", base+"/v1/profiles/u1", nil)
	req.Header.Set("Authorization", "Bearer "+tokRead)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 || !strings.Contains(string(body), `"id":"u1"`) {
		t.Fatalf("status %d, TLS %v: %s", resp.StatusCode, resp.TLS != nil, body)
	}
	// TLS 1.1 is refused.
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}}
	if resp, err := old.Get(base + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("TLS 1.1 client was served")
	}
	old.CloseIdleConnections()
	// Plain HTTP on the TLS port is not served.
	if resp, err := http.Get(strings.Replace(base, "https", "http", 1) + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP served on the TLS port")
		}
	}
	client.CloseIdleConnections()
	if err := stop(); err != nil {
		t.Fatalf("Serve returned %v after cancel", err)
	}
}

// TestGracefulShutdown: cancelling Serve's context lets a request in
// flight finish, then Serve returns nil and the port is closed.
func TestGracefulShutdown(t *testing.T) {
	e := newEnv(t, nil)
	release := make(chan struct{})
	e.store.set(func(f *fakeStore) { f.block = release })
	base, stop := serveOn(t, e.srv, "http")
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	type result struct {
		status int
		err    error
	}
	res := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", base+"/v1/segments", nil)
		req.Header.Set("Authorization", "Bearer "+tokRead)
		resp, err := client.Do(req)
		if err != nil {
			res <- result{err: err}
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		res <- result{status: resp.StatusCode}
	}()
	// Wait until the request reached the backend.
	for deadline := time.Now().Add(5 * time.Second); ; {
		e.store.mu.Lock()
		calls := e.store.calls
		e.store.mu.Unlock()
		if calls > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("request never reached the backend")
		}
		time.Sleep(time.Millisecond)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	select {
	case err := <-stopped:
		t.Fatalf("Serve returned (%v) with a request in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if r := <-res; r.err != nil || r.status != 200 {
		t.Fatalf("in-flight request: %d %v", r.status, r.err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), time.Second); err == nil {
		t.Fatal("port still open after shutdown")
	}
}

// TestReadHeaderTimeout: a client that never finishes its headers is cut
// off after ReadHeaderTimeout.
func TestReadHeaderTimeout(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.ReadHeaderTimeout = 50 * time.Millisecond })
	base, stop := serveOn(t, e.srv, "http")
	defer stop()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n") // no final CRLF
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	b, _ := io.ReadAll(conn) // returns when the server closes the connection
	if elapsed := time.Since(start); elapsed > 4*time.Second || strings.Contains(string(b), "200 OK") {
		t.Fatalf("connection held %s, got %q", elapsed, b)
	}
}

func TestRun(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.Addr = "127.0.0.1:0" })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Run(ctx) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	bad := newEnv(t, func(c *api.Config) { c.Addr = "127.0.0.1:99999" })
	if err := bad.srv.Run(context.Background()); err == nil {
		t.Fatal("Run on an invalid port succeeded")
	}
}

// TestServeMiddleware: Config.Middleware wraps the handler Serve serves;
// the wrapped server still answers (here, after the middleware's header).
func TestServeMiddleware(t *testing.T) {
	var seen []string
	e := newEnv(t, func(c *api.Config) {
		c.Middleware = func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = append(seen, r.URL.Path)
				w.Header().Set("X-Wrapped", "yes")
				next.ServeHTTP(w, r)
			})
		}
	})
	base, stop := serveOn(t, e.srv, "http")
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	for _, path := range []string{"/healthz", "/v1/profiles/u1"} {
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := map[string]int{"/healthz": 200, "/v1/profiles/u1": 401}[path]
		if resp.StatusCode != want || resp.Header.Get("X-Wrapped") != "yes" || resp.Header.Get("X-Request-Id") == "" {
			t.Errorf("GET %s: %d, X-Wrapped %q, X-Request-Id %q; want %d through the middleware and the server",
				path, resp.StatusCode, resp.Header.Get("X-Wrapped"), resp.Header.Get("X-Request-Id"), want)
		}
	}
	client.CloseIdleConnections()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(seen, ",") != "/healthz,/v1/profiles/u1" {
		t.Errorf("middleware saw %v", seen)
	}
}
