package observability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Log formats accepted by NewLogger.
const (
	LogText = "text"
	LogJSON = "json"
)

// NewLogger returns a logger writing format (LogText or LogJSON) to w at
// level and above (nil: slog.LevelInfo; pass a *slog.LevelVar to change it
// at run time). Its handler is wrapped by NewRedactHandler, so user ids,
// anonymous ids, e-mail and IP addresses never reach w. An unknown format is
// a *FieldError.
func NewLogger(w io.Writer, format string, level slog.Leveler) (*slog.Logger, error) {
	if level == nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch format {
	case LogText:
		h = slog.NewTextHandler(w, opts)
	case LogJSON:
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, &FieldError{Field: "log format", Reason: fmt.Sprintf("%q: want text or json", format)}
	}
	return slog.New(NewRedactHandler(h)), nil
}

// DefaultRedactKeys returns the attribute keys whose values the redacting
// handler always masks. Keys are compared case-insensitively, ignoring '_',
// '-', '.' and spaces, so "userId", "user-id" and "USER_ID" all match
// user_id; an attribute id inside a group user matches user_id too.
func DefaultRedactKeys() []string {
	return []string{
		"user_id", "user", "anonymous_id", "anon_id", "profile_key", "message_key",
		"email", "email_address", "e_mail", "phone",
		"ip", "ip_address", "client_ip", "remote_ip", "remote_addr", "x_forwarded_for", "x_real_ip",
	}
}

// NewRedactHandler wraps next so that no PII reaches it: values of
// attributes named by DefaultRedactKeys() or extraKeys (at any group depth) are
// replaced by Redacted, and e-mail and IP addresses are masked (RedactString)
// in the message, in string values, in errors and Stringers, and in the
// strings of any other value, which is passed on as its JSON form with
// sensitive keys masked too.
func NewRedactHandler(next slog.Handler, extraKeys ...string) slog.Handler {
	defaults := DefaultRedactKeys()
	keys := make(map[string]bool, len(defaults)+len(extraKeys))
	for _, k := range defaults {
		keys[normKey(k)] = true
	}
	for _, k := range extraKeys {
		keys[normKey(k)] = true
	}
	return &redactHandler{next: next, keys: keys}
}

type redactHandler struct {
	next  slog.Handler
	keys  map[string]bool
	group string // innermost group opened by WithGroup
}

// normKey lower-cases k and drops '_', '-', '.' and spaces.
func normKey(k string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '_', '-', '.', ' ':
			return -1
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, k)
}

func (h *redactHandler) sensitive(key, group string) bool {
	k := normKey(key)
	return h.keys[k] || (group != "" && h.keys[normKey(group)+k])
}

func (h *redactHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *redactHandler) Handle(ctx context.Context, r slog.Record) error {
	nr := slog.NewRecord(r.Time, r.Level, RedactString(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		nr.AddAttrs(h.redact(a, h.group))
		return true
	})
	return h.next.Handle(ctx, nr)
}

func (h *redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = h.redact(a, h.group)
	}
	return &redactHandler{next: h.next.WithAttrs(out), keys: h.keys, group: h.group}
}

func (h *redactHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &redactHandler{next: h.next.WithGroup(name), keys: h.keys, group: name}
}

// redact returns a with its value masked as NewRedactHandler describes;
// group is the name of the group a is in.
func (h *redactHandler) redact(a slog.Attr, group string) (out slog.Attr) {
	defer func() {
		if p := recover(); p != nil { // a LogValue, Error or String method panicked
			out = slog.String(a.Key, RedactString(fmt.Sprintf("!PANIC: %v", p)))
		}
	}()
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		attrs := v.Group()
		red := make([]slog.Attr, len(attrs))
		for i, x := range attrs {
			red[i] = h.redact(x, a.Key)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(red...)}
	}
	if h.sensitive(a.Key, group) {
		return slog.String(a.Key, Redacted)
	}
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, RedactString(v.String()))
	case slog.KindAny:
		return slog.Attr{Key: a.Key, Value: h.redactAny(v.Any())}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// redactAny masks a value of slog.KindAny.
func (h *redactHandler) redactAny(x any) slog.Value {
	switch x := x.(type) {
	case nil:
		return slog.AnyValue(nil)
	case error:
		return slog.StringValue(RedactString(x.Error()))
	case fmt.Stringer:
		return slog.StringValue(RedactString(x.String()))
	case []byte:
		return slog.StringValue(RedactString(string(x)))
	}
	b, err := json.Marshal(x)
	if err != nil {
		return slog.StringValue(RedactString(fmt.Sprintf("%+v", x)))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return slog.StringValue(RedactString(string(b)))
	}
	return slog.AnyValue(h.redactJSON(tree))
}

// redactJSON masks a decoded JSON tree: values under sensitive keys, and
// addresses in strings.
func (h *redactHandler) redactJSON(x any) any {
	switch x := x.(type) {
	case map[string]any:
		for k, v := range x {
			if h.sensitive(k, "") {
				x[k] = Redacted
			} else {
				x[k] = h.redactJSON(v)
			}
		}
	case []any:
		for i, v := range x {
			x[i] = h.redactJSON(v)
		}
	case string:
		return RedactString(x)
	}
	return x
}
