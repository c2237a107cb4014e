package browser

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestPage loads a page that changes itself, reads it through DevTools and
// takes a screenshot. It skips where no chromium is installed (this test
// does not install one; the dashboard's end-to-end test does).
func TestPage(t *testing.T) {
	bin, err := Find(context.Background(), false, t.Logf)
	if errors.Is(err, ErrUnavailable) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><title>t</title><p id="n">0</p><script>let n=0;setInterval(()=>{document.getElementById("n").textContent=++n},50)</script>`)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := Launch(ctx, bin, srv.URL, Options{UserDataDir: t.TempDir(), Width: 400, Height: 300})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p, err := b.Page(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	read := func() int {
		var n int
		for i := 0; i < 100; i++ {
			var text string
			if err := p.Eval(ctx, `document.getElementById("n") ? document.getElementById("n").textContent : ""`, &text); err != nil {
				t.Fatal(err)
			}
			if _, err := fmt.Sscan(text, &n); err == nil {
				return n
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("the page never rendered its counter")
		return 0
	}
	first := read()
	time.Sleep(300 * time.Millisecond)
	if second := read(); second <= first {
		t.Errorf("counter went from %d to %d: the page's script does not run", first, second)
	}
	if err := p.Eval(ctx, `(() => { throw new Error("boom") })()`, nil); err == nil {
		t.Error("a thrown exception was not an error")
	}
	png, err := p.Screenshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("screenshot is not a PNG: % x", png[:min(8, len(png))])
	}
}

func TestLaunchNeedsProfileDir(t *testing.T) {
	if _, err := Launch(context.Background(), "chromium", "about:blank", Options{}); err == nil {
		t.Error("Launch without a user data dir succeeded")
	}
}
