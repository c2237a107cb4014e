// Package httpserve holds the one graceful-shutdown loop of the project's
// HTTP servers (the profile API, the admin server and the dashboard):
// serve until the context is done, then Shutdown within a bounded time,
// closing the server if that fails.
package httpserve
