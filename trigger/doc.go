// Package trigger is fnhost's HTTP trigger service (DESIGN §5): a Gin server that turns HTTP
// calls into function invocations through an Invoker and streams the outputs back.
//
// # Ports
//
// The service depends on small interfaces only: Invoker (run a function, list functions),
// Publisher (optional, fire-and-forget topic publishing) and InvocationStore (async
// invocation records; MemoryStore is the default). cmd/fnhost wires the host runtime's
// in-process invoker in embedded mode; a Pulsar-topic invoker and a table-view store come
// later. The package imports no part of the runtime; it shares only the property names of
// functions/pf/invocation.
//
// # Invoking
//
// POST /v1/functions/{tenant}/{namespace}/{name}/invoke (and POST /function/{name} for
// public/default) takes the body as the payload and these headers:
//
//   - X-Message-Key: the message key.
//   - X-Message-Property-<name>: one property each. Names are lower-cased (HTTP header names
//     are case-insensitive); fnhost-*, __pfn_*, content-type and trace names are reserved.
//   - X-Timeout: a Go duration (5s) or integer milliseconds (5000), capped by
//     Config.MaxTimeout; default Config.DefaultTimeout. It becomes the one deadline of the
//     invocation, carried to the function.
//   - traceparent, tracestate: W3C trace context, passed on (a malformed traceparent is 400).
//   - Content-Type: passed on, and the default content type of a single output.
//
// The answer depends on what the caller asks for:
//
//   - default: wait, then 200 with the single output's bytes (its key and properties as
//     X-Message-Key and X-Message-Property-* headers), 204 when there is none, or a JSON array
//     when there are several. X-Invocation-Id and X-Output-Count are always set.
//   - Accept: text/event-stream: Server-Sent Events, one "output" event per output with
//     id = seq, then "done" or "error". Resume with GET /v1/invocations/{id}/events and
//     Last-Event-ID: the replay buffer keeps recent invocations (Config.Replay*).
//   - Accept: application/x-ndjson: one JSON line per output, then a {"done":true,…} line.
//   - Prefer: respond-async (or an X-Callback-Url): 202 with the id and Location:
//     /v1/invocations/{id}; the record is kept in the InvocationStore and, with
//     X-Callback-Url, POSTed there (signed with Config.CallbackSecret) with retries.
//
// In JSON an output is {"seq","payload" or "payload_base64","key","properties",
// "content_type","attempt"}: "payload" when the bytes are UTF-8, else "payload_base64"; never
// both.
//
// A function retried by Pulsar starts its outputs again with a higher attempt (see
// Output.Attempt). Synchronous answers and async records hold the last attempt's outputs only;
// streams announce the retry with a "restart" event (SSE) or line (NDJSON) and go on.
//
// A streamed invocation outlives a caller that goes away (bounded by its deadline and by
// shutdown), so the caller can resume it; streamed and async invocations are followed through
// GET /v1/invocations/{id}/events, which resumes with Last-Event-ID.
//
// Errors are always {"error":{"code","message","invocation_id"}} with the status that fits;
// openapi.yaml (served at /openapi.yaml) lists routes, headers and codes.
//
// # Auth
//
// Protected routes take Authorization: Bearer <token>, checked by a middleware in front of
// the handlers (Config.Auth, see AuthConfig): a static token (compared in constant time) or a
// JWT signed HS256 or RS256, the algorithm pinned by the configured key, with exp required
// and nbf, iat, iss and aud checked. The token's scopes grant routes:
// invoke:<tenant>/<namespace>/<name> (a segment may be *; invoke:* grants all functions),
// publish:<tenant>/<namespace>/<topic>, and read for the catalogue and invocation records.
// An invocation's record and events are also open to the invoke scope of its function, so a
// caller can fetch and resume what it started.
// A missing or invalid token is 401 unauthenticated with WWW-Authenticate; a valid one
// without the scope is 403 forbidden, naming the scope. /healthz, /readyz, /metrics and
// /openapi.yaml stay open. With no tokens or JWT configured, auth is off, which New allows
// only on a loopback Addr, or with Auth.Disabled (then it logs a warning). Tokens are never
// logged.
//
// # Callbacks
//
// X-Callback-Url is restricted against server-side request forgery (Config.CallbackAllow):
// by default a callback may go only to public unicast addresses, and to loopback while the
// trigger listens on loopback without authentication (local development). Redirects are not
// followed. Private, link-local (cloud metadata), shared, multicast,
// unspecified and reserved addresses are refused unless allowed by IP, CIDR or host name. The
// URL's host is checked when the request comes (400 invalid_callback_url naming why), and the
// address every callback connects to is checked again by the client's dialer, so a name that
// resolves differently later (DNS rebinding) gains nothing. Callbacks never use a proxy.
package trigger
