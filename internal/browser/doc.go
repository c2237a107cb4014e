// Package browser drives a headless Chromium for end-to-end tests of web
// pages: Find locates (or, as root with apt-get, installs) Debian's
// chromium, Launch starts it with a throw-away profile and none of its own
// network traffic (no sync, updates or QUIC), and Page speaks the small part
// of the Chrome DevTools Protocol the tests need over its websocket: Eval
// (evaluate an expression in the page) and Screenshot.
//
// It is for tests only and depends on nothing but golang.org/x/net's
// websocket client.
package browser
