package browser

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/websocket"
)

// ErrUnavailable is wrapped by Find when no Chromium can be had; the
// message says why (not installed, and not root or no apt-get).
var ErrUnavailable = errors.New("browser: no chromium")

// Candidates are the executable names Find looks for, in order.
func Candidates() []string {
	return []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}
}

// Find returns the path of a Chromium executable. When none is on PATH and
// install is true, it installs Debian's chromium package with apt-get
// (running apt-get update first if the first attempt fails) — only as root
// and where apt-get exists; otherwise, or when that fails, it returns an
// error wrapping ErrUnavailable. Install output goes to log.
func Find(ctx context.Context, install bool, log func(format string, args ...any)) (string, error) {
	if p, ok := lookPath(); ok {
		return p, nil
	}
	if !install {
		return "", fmt.Errorf("%w: none of %v is on PATH", ErrUnavailable, Candidates())
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("%w: none of %v is on PATH, and installing one needs root (apt-get install -y chromium)", ErrUnavailable, Candidates())
	}
	apt, err := exec.LookPath("apt-get")
	if err != nil {
		return "", fmt.Errorf("%w: none of %v is on PATH and there is no apt-get to install chromium", ErrUnavailable, Candidates())
	}
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, apt, append([]string{"-o", "DPkg::Lock::Timeout=300", "-q"}, args...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			log("apt-get %s failed: %v; last lines:\n%s", strings.Join(args, " "), err, strings.Join(lines[max(0, len(lines)-10):], "\n"))
		}
		return err
	}
	log("installing Debian's chromium with apt-get (once per machine)")
	if err := run("install", "-y", "chromium"); err != nil {
		if err := run("update"); err != nil {
			return "", fmt.Errorf("%w: apt-get update failed: %v", ErrUnavailable, err)
		}
		if err := run("install", "-y", "chromium"); err != nil {
			return "", fmt.Errorf("%w: apt-get install -y chromium failed: %v", ErrUnavailable, err)
		}
	}
	if p, ok := lookPath(); ok {
		return p, nil
	}
	return "", fmt.Errorf("%w: chromium installed but not on PATH", ErrUnavailable)
}

func lookPath() (string, bool) {
	for _, name := range Candidates() {
		if p, err := exec.LookPath(name); err == nil {
			return p, true
		}
	}
	return "", false
}

// Options configure Launch. Every field states its default.
type Options struct {
	// Width and Height of the window, CSS pixels. Default 1400×1600.
	Width, Height int
	// UserDataDir is the throw-away profile directory. Required (tests
	// pass t.TempDir()).
	UserDataDir string
	// StartTimeout bounds the start until DevTools answers. Default 60s.
	StartTimeout time.Duration
}

// Flags returns the command line Launch runs bin with for url.
func (o Options) Flags(url string) []string {
	return []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", "--no-default-browser-check",
		"--user-data-dir=" + o.UserDataDir,
		"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--remote-allow-origins=" + origin,
		fmt.Sprintf("--window-size=%d,%d", o.Width, o.Height),
		url,
	}
}

// origin is the Origin of the DevTools websocket connection.
const origin = "http://127.0.0.1"

// Browser is a running headless Chromium.
type Browser struct {
	cmd    *exec.Cmd
	port   int
	waited chan struct{}
	once   sync.Once
}

// Launch starts bin headless on url and waits until its DevTools endpoint
// answers.
func Launch(ctx context.Context, bin, url string, o Options) (*Browser, error) {
	if o.UserDataDir == "" {
		return nil, errors.New("browser: Options.UserDataDir is required")
	}
	if o.Width <= 0 || o.Height <= 0 {
		o.Width, o.Height = 1400, 1600
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 60 * time.Second
	}
	cmd := exec.Command(bin, o.Flags(url)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its helpers go with it
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("browser: start %s: %w", bin, err)
	}
	b := &Browser{cmd: cmd, waited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(b.waited) }()
	deadline := time.Now().Add(o.StartTimeout)
	portFile := filepath.Join(o.UserDataDir, "DevToolsActivePort")
	for {
		if port, ok := readPort(portFile); ok {
			b.port = port
			return b, nil
		}
		select {
		case <-b.waited:
			return nil, fmt.Errorf("browser: %s exited before DevTools listened (%v)", bin, cmd.ProcessState)
		case <-ctx.Done():
			b.Close()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Close()
			return nil, fmt.Errorf("browser: DevTools did not listen within %s", o.StartTimeout)
		}
	}
}

// readPort reads the first line of Chromium's DevToolsActivePort file.
func readPort(path string) (int, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, false
	}
	port, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
	return port, err == nil && port > 0
}

// Close ends the browser (its process group, which Launch created) and
// waits for it.
func (b *Browser) Close() {
	b.once.Do(func() {
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-b.waited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
			<-b.waited
		}
	})
}

// target is one entry of DevTools' /json/list.
type target struct {
	Type                 string `json:"type"`
	URL                  string `json:"url"`
	WebSocketDebuggerURL string `json:"webSocketDebuggerUrl"`
}

// Page connects to the browser's first page.
func (b *Browser) Page(ctx context.Context) (*Page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/json/list", b.port), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("browser: DevTools targets: %w", err)
	}
	defer resp.Body.Close()
	var targets []target
	if err := json.NewDecoder(resp.Body).Decode(&targets); err != nil {
		return nil, fmt.Errorf("browser: DevTools targets: %w", err)
	}
	for _, t := range targets {
		if t.Type != "page" || t.WebSocketDebuggerURL == "" {
			continue
		}
		cfg, err := websocket.NewConfig(t.WebSocketDebuggerURL, origin)
		if err != nil {
			return nil, err
		}
		conn, err := cfg.DialContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("browser: DevTools websocket: %w", err)
		}
		return &Page{conn: conn}, nil
	}
	return nil, fmt.Errorf("browser: no page among %d DevTools targets", len(targets))
}

// Page is a DevTools session with one page. Its methods are not safe for
// concurrent use.
type Page struct {
	conn *websocket.Conn
	next int
}

// Close closes the session.
func (p *Page) Close() error { return p.conn.Close() }

// call sends a DevTools command and returns its result, skipping the
// events that arrive meanwhile.
func (p *Page) call(ctx context.Context, method string, params any, result any) error {
	p.next++
	id := p.next
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	if err := p.conn.SetDeadline(deadline); err != nil {
		return err
	}
	if err := websocket.JSON.Send(p.conn, map[string]any{"id": id, "method": method, "params": params}); err != nil {
		return fmt.Errorf("browser: %s: %w", method, err)
	}
	for {
		var msg struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := websocket.JSON.Receive(p.conn, &msg); err != nil {
			return fmt.Errorf("browser: %s: %w", method, err)
		}
		if msg.ID != id {
			continue // an event, or a late answer
		}
		if msg.Error != nil {
			return fmt.Errorf("browser: %s: %d %s", method, msg.Error.Code, msg.Error.Message)
		}
		if result == nil {
			return nil
		}
		return json.Unmarshal(msg.Result, result)
	}
}

// Eval evaluates a JavaScript expression in the page (awaiting a promise)
// and decodes its JSON value into out (nil: discard). A thrown exception is
// an error.
func (p *Page) Eval(ctx context.Context, expr string, out any) error {
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := p.call(ctx, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &res)
	if err != nil {
		return err
	}
	if res.Exception != nil {
		return fmt.Errorf("browser: %s: %s %s", expr, res.Exception.Text, res.Exception.Exception.Description)
	}
	if out == nil || len(res.Result.Value) == 0 {
		return nil
	}
	return json.Unmarshal(res.Result.Value, out)
}

// Screenshot returns a PNG of the whole page (beyond the window, when
// longer).
func (p *Page) Screenshot(ctx context.Context) ([]byte, error) {
	var res struct {
		Data string `json:"data"`
	}
	if err := p.call(ctx, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &res); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(res.Data)
}
