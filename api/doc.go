// Package api is streamprofile's profile HTTP API: read a profile, list
// segments and page through their members, erase a profile and follow the
// erasure's receipt. It is plain net/http (Go 1.22 ServeMux patterns) over
// three narrow backend interfaces — Profiles, Segments, Erasures — that the
// storage layer implements; this package holds no storage code.
//
// # Routes
//
//	GET    /v1/profiles/{id}               profiles:read   Profile
//	DELETE /v1/profiles/{id}               profiles:erase  202 Receipt, Location: /v1/erasures/{receipt}
//	GET    /v1/segments                    profiles:read   SegmentList
//	GET    /v1/segments/{name}/members     profiles:read   MemberPage (?cursor=&limit=)
//	GET    /v1/erasures/{receipt}          profiles:erase  Receipt
//	GET    /healthz                        public          Health (liveness only)
//	GET    /openapi.json                   public          the OpenAPI 3.1 document
//
// openapi.yaml (embedded, served as JSON, also returned by OpenAPI) is the
// public contract. Its tests check that every route is documented with its
// scope, that every documented operation is served, and that every response
// the tests produce — errors included — matches the documented schema.
// /openapi.json is public because it holds no data, only the contract that
// any client needs before it has a token.
//
// # Authentication
//
// Every route but /healthz and /openapi.json needs "Authorization: Bearer
// <token>". The token file (Config.TokensFile, YAML, see TokenSpec) lists
// each token's name, the hex SHA-256 of the token, its scopes and an
// optional RFC 3339 expiry; tokens are never stored in clear, and a file
// that holds a "token:" is rejected. A request's token is hashed and its
// digest compared with every configured digest with crypto/subtle, without
// stopping at a match, so response time does not reveal which token
// matched. MintToken makes a token and its digest; MarshalTokenFile writes
// the file; ReloadTokens re-reads it, and ReloadTokensOn does so at each
// signal it is given (serve wires SIGHUP).
//
// Missing, malformed (not "Bearer <b64token>", more than one Authorization
// header, longer than MaxTokenLen), unknown and expired tokens get 401
// unauthorized with a WWW-Authenticate challenge (RFC 6750); a valid token
// without the route's scope gets 403 forbidden with
// error="insufficient_scope". ScopeAdmin implies every scope; the other two
// are independent (an erasure tool need not read profiles).
//
// # Limits
//
//   - Rate: a token bucket per token (Config.RateLimit per second, burst
//     Config.RateBurst), applied after authentication and before the scope
//     check; past it, 429 rate_limited with Retry-After in whole seconds.
//     Unauthenticated requests are not rate limited here (they cost one
//     SHA-256 and are refused); put a connection limit in front.
//   - Time: every backend call runs under a Config.RequestTimeout deadline
//     (2s) and the handler answers 504 timeout at the deadline even when a
//     backend ignores its context. The http.Server has read-header, read,
//     write and idle timeouts and a header size limit.
//   - Body: no route reads a body; bodies up to Config.MaxBodyBytes (1 KiB)
//     are drained and ignored, larger ones get 413 payload_too_large.
//
// # Errors
//
// Every error is an RFC 9457 problem (application/problem+json) with a
// stable code (Code: bad_request, unauthorized, forbidden, not_found,
// method_not_allowed, payload_too_large, rate_limited, internal,
// unavailable, timeout), type "urn:streamprofile:problem:<code>", and the
// request's X-Request-Id. Details never contain ids from the request,
// tokens or backend error texts; 5xx errors are logged with the request id
// (use a redacting logger: backend errors may hold ids). Backends select
// responses by returning ErrNotFound, ErrInvalidCursor or ErrUnavailable
// (wrapped or not); anything else is a 500.
//
// # Backend contract
//
// Ids in paths are unescaped and checked (1 to MaxIDLen bytes of UTF-8
// without control characters) before a backend sees them, and may be any
// linked id or a pseudonym. Backend results are checked before they are
// sent: nil collections become [] or {}, and a nil profile, more members
// than the limit, or a receipt with an invalid id, status or step is a 500
// rather than a response that breaks the contract. A Receipt names its
// user by pseudonym only; member lists hold the ids the store keeps
// (pseudonyms when pseudonymisation is on). Responses are marked
// Cache-Control: no-store.
//
// # Serving
//
// New reads the token file and TLS files; Run listens on Config.Addr, Serve
// on a given listener; both serve HTTPS (TLS 1.2+) when a certificate is
// configured and shut down gracefully when their context ends. Handler
// returns the http.Handler for other servers or tests.
package api
