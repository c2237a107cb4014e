package observability

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewLogger(&buf, LogJSON, slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("hidden")
	log.Info("flushed", "partition", 3, "user_id", "u-42", "took", 5*time.Millisecond)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not one JSON record: %v\n%s", err, buf.String())
	}
	if rec["msg"] != "flushed" || rec["partition"] != float64(3) || rec["user_id"] != Redacted || rec["took"] != float64(5*time.Millisecond) {
		t.Errorf("record %v", rec)
	}

	buf.Reset()
	var lv slog.LevelVar
	lv.Set(slog.LevelWarn)
	log, err = NewLogger(&buf, LogText, &lv)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("lagging", "email", "a@b.co", "partition", 1)
	if got := buf.String(); !strings.Contains(got, "level=WARN msg=lagging email="+Redacted+" partition=1") || strings.Contains(got, "hidden") {
		t.Errorf("text output %q", got)
	}
	lv.Set(slog.LevelDebug)
	log.Debug("now visible")
	if !strings.Contains(buf.String(), "now visible") {
		t.Error("LevelVar change not honoured")
	}

	if log, err := NewLogger(&buf, "text", nil); err != nil || !log.Enabled(t.Context(), slog.LevelInfo) || log.Enabled(t.Context(), slog.LevelDebug) {
		t.Errorf("nil level: err %v, want Info", err)
	}
	for _, f := range []string{"", "logfmt", "JSON"} {
		if _, err := NewLogger(&buf, f, nil); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("format %q: err = %v, want ErrInvalidConfig", f, err)
		}
	}
}

type person struct {
	Name    string `json:"name"`
	UserID  string `json:"user_id"`
	Contact string
	IP      netip.Addr `json:"ip"`
	Tags    []string   `json:"tags"`
}

type secretValuer struct{ email string }

func (s secretValuer) LogValue() slog.Value {
	return slog.GroupValue(slog.String("email", s.email), slog.String("kind", "customer"))
}

type panicky struct{}

func (*panicky) String() string { panic("bad stringer") }

// TestRedactHandler: what reaches the wrapped handler, as JSON.
func TestRedactHandler(t *testing.T) {
	tests := []struct {
		name   string
		log    func(*slog.Logger)
		want   map[string]any // top-level fields expected (after JSON decoding)
		absent []string       // substrings that must not appear
	}{
		{name: "sensitive keys in any spelling",
			log: func(l *slog.Logger) {
				l.Info("m", "user_id", "u1", "userId", "u2", "Anonymous-ID", "a1", "EMAIL", "x", "ip", "1.2.3.4", "client_ip", "5.6.7.8", "partition", 7)
			},
			want:   map[string]any{"user_id": Redacted, "userId": Redacted, "Anonymous-ID": Redacted, "EMAIL": Redacted, "ip": Redacted, "client_ip": Redacted, "partition": float64(7)},
			absent: []string{"u1", "u2", "a1", "1.2.3.4", "5.6.7.8"}},
		{name: "addresses inside values and the message",
			log: func(l *slog.Logger) {
				l.Info("login from 192.168.1.20 by jane.doe+shop@example.co.uk", "note", "mail ops@corp.example or call ::1 / fe80::1%eth0", "n", 3)
			},
			want:   map[string]any{"msg": "login from " + Redacted + " by " + Redacted, "note": "mail " + Redacted + " or call " + Redacted + " / " + Redacted + "%eth0", "n": float64(3)},
			absent: []string{"192.168", "jane.doe", "ops@"}},
		{name: "errors and stringers",
			log: func(l *slog.Logger) {
				l.Error("flush failed", "err", errors.New("dial tcp 10.1.2.3:6379: refused"), "peer", netip.MustParseAddr("2001:db8::7"))
			},
			want:   map[string]any{"err": "dial tcp " + Redacted + ":6379: refused", "peer": Redacted},
			absent: []string{"10.1.2.3", "2001:db8"}},
		{name: "groups: keys inside, and group+key",
			log: func(l *slog.Logger) {
				l.Info("m", slog.Group("user", "id", "u-9", "email", "z@z.io", "segment", "vip"), slog.Group("req", "remote_addr", "8.8.8.8:443"))
			},
			want: map[string]any{
				"user": map[string]any{"id": Redacted, "email": Redacted, "segment": "vip"},
				"req":  map[string]any{"remote_addr": Redacted},
			},
			absent: []string{"u-9", "z@z.io", "8.8.8.8"}},
		{name: "LogValuer resolved first",
			log:    func(l *slog.Logger) { l.Info("m", "who", secretValuer{email: "q@example.org"}) },
			want:   map[string]any{"who": map[string]any{"email": Redacted, "kind": "customer"}},
			absent: []string{"q@example.org"}},
		{name: "structs: sensitive fields by JSON name and Go name, strings scrubbed",
			log: func(l *slog.Logger) {
				l.Info("m", "p", person{Name: "Jo", UserID: "u-7", Contact: "jo@example.com", IP: netip.MustParseAddr("9.9.9.9"), Tags: []string{"x@y.io", "ok"}})
			},
			want: map[string]any{"p": map[string]any{"name": "Jo", "user_id": Redacted, "Contact": Redacted, "ip": Redacted,
				"tags": []any{Redacted, "ok"}}},
			absent: []string{"u-7", "jo@example.com", "9.9.9.9", "x@y.io"}},
		{name: "maps",
			log:    func(l *slog.Logger) { l.Info("m", "attrs", map[string]any{"anonymous_id": "anon-1", "count": 2}) },
			want:   map[string]any{"attrs": map[string]any{"anonymous_id": Redacted, "count": float64(2)}},
			absent: []string{"anon-1"}},
		{name: "bytes",
			log:    func(l *slog.Logger) { l.Info("m", "raw", []byte(`{"user":"x","email":"b@c.de"}`)) },
			absent: []string{"b@c.de"}},
		{name: "panicking stringer does not crash",
			log:  func(l *slog.Logger) { l.Info("m", "v", &panicky{}) },
			want: map[string]any{"v": "!PANIC: bad stringer"}},
		{name: "non-PII kept intact",
			log: func(l *slog.Logger) {
				l.Info("partition 3 flushed", "topic", "clickstream", "offset", int64(1234), "ts", "2019-10-01T00:00:00Z", "version", "v1.47.0", "took", "12:30:45")
			},
			want: map[string]any{"msg": "partition 3 flushed", "topic": "clickstream", "offset": float64(1234), "ts": "2019-10-01T00:00:00Z", "version": "v1.47.0", "took": "12:30:45"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tt.log(slog.New(NewRedactHandler(slog.NewJSONHandler(&buf, nil))))
			out := buf.String()
			for _, a := range tt.absent {
				if strings.Contains(out, a) {
					t.Errorf("output contains %q:\n%s", a, out)
				}
			}
			var rec map[string]any
			if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
				t.Fatalf("output is not one JSON record: %v\n%s", err, out)
			}
			for k, want := range tt.want {
				if got, _ := json.Marshal(rec[k]); string(got) != mustJSON(t, want) {
					t.Errorf("%s = %s, want %s", k, got, mustJSON(t, want))
				}
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRedactHandlerWithAttrsAndGroups: attributes bound with With and
// groups opened with WithGroup are redacted too.
func TestRedactHandlerWithAttrsAndGroups(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(NewRedactHandler(slog.NewTextHandler(&buf, nil), "session_id"))
	l = l.With("user_id", "u-1", "component", "trigger")
	l.WithGroup("user").Info("entered segment", "id", "u-2", "segment", "vip", "sessionId", "s-3")
	got := buf.String()
	for _, bad := range []string{"u-1", "u-2", "s-3"} {
		if strings.Contains(got, bad) {
			t.Errorf("output contains %q: %s", bad, got)
		}
	}
	for _, want := range []string{"user_id=" + Redacted, "component=trigger", "user.id=" + Redacted, "user.segment=vip", "user.sessionId=" + Redacted} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q: %s", want, got)
		}
	}
	if h := NewRedactHandler(slog.NewTextHandler(&buf, nil)); h.WithGroup("") != h {
		t.Error("WithGroup(\"\") should return the handler itself")
	}
}

func TestRedactString(t *testing.T) {
	R := Redacted
	tests := []struct{ in, want string }{
		{"", ""},
		{"no addresses here", "no addresses here"},
		{"a@b.co", R},
		{"mail: first.last+tag@sub.example.com.", "mail: " + R + "."},
		{"<jane@example.org>", "<" + R + ">"},
		{"user@localhost", "user@localhost"}, // no dot in the domain
		{"@handle and trailing@", "@handle and trailing@"},
		{"go get x@v1.2", "go get " + R}, // errs on the side of masking
		{"10.0.0.1", R},
		{"from 10.0.0.1:5432,", "from " + R + ":5432,"},
		{"ip=255.255.255.255.", "ip=" + R + "."},
		{"256.1.1.1 and 1.2.3 and 1.2.3.4.5", "256.1.1.1 and 1.2.3 and 1.2.3.4.5"},
		{"[2001:db8::1]:443", "[" + R + "]:443"},
		{"::1", R},
		{"addr fe80::1: refused", "addr " + R + ": refused"},
		{"::ffff:192.0.2.1", R},
		{"mac aa:bb:cc:dd:ee:ff", "mac aa:bb:cc:dd:ee:ff"},
		{"at 12:30:45 on 2019-10-01T00:00:00Z", "at 12:30:45 on 2019-10-01T00:00:00Z"},
		{"scope a::b", "scope " + R}, // a valid IPv6 address
		{"fe80::1%eth0", R + "%eth0"},
		{"x::1y", "x::1y"},
		{"std::vector and ::", "std::vector and ::"},
		{"a@b.cd::1", R + R},
		{"v1.47.0", "v1.47.0"},
	}
	for _, tt := range tests {
		if got := RedactString(tt.in); got != tt.want {
			t.Errorf("RedactString(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzRedactString: the output holds no address the detector would find,
// redacting twice changes nothing, and text without '@', '.' or ':' is
// returned as is.
func FuzzRedactString(f *testing.F) {
	for _, s := range []string{"a@b.co", "10.0.0.1:80", "[::1]:9", "x@1.2.3.4", "a@b.cd::1", "fe80::1%eth0", "1.2.3.4.5@x.yz", "::ffff:1.2.3.4", "plain"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := RedactString(s)
		if sp := piiSpans(out); len(sp) != 0 {
			t.Fatalf("RedactString(%q) = %q still holds %q", s, out, out[sp[0][0]:sp[0][1]])
		}
		if again := RedactString(out); again != out {
			t.Fatalf("not idempotent: %q → %q → %q", s, out, again)
		}
		if !strings.ContainsAny(s, "@.:") && out != s {
			t.Fatalf("changed %q to %q", s, out)
		}
	})
}

// FuzzRedactHandler: no attribute value can carry an e-mail address through.
func FuzzRedactHandler(f *testing.F) {
	f.Add("k", "v@x.io", "msg 1.1.1.1")
	f.Add("user_id", "abc", "")
	f.Fuzz(func(t *testing.T, key, value, msg string) {
		var buf bytes.Buffer
		l := slog.New(NewRedactHandler(slog.NewJSONHandler(&buf, nil)))
		l.Info(msg, key, value, "g", map[string]string{key: value})
		var rec map[string]any
		if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
			t.Fatalf("invalid JSON output %q: %v", buf.String(), err)
		}
		for k, v := range rec {
			if s, ok := v.(string); ok && k != "time" && k != "level" && len(piiSpans(s)) != 0 {
				t.Fatalf("field %q = %q holds an address", k, s)
			}
		}
	})
}

func BenchmarkRedactStringClean(b *testing.B) {
	s := "partition clickstream/3 flushed 512 users in 4ms"
	b.ReportAllocs()
	for b.Loop() {
		_ = RedactString(s)
	}
}
