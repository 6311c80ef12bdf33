package trigger

import (
	"crypto"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// Error codes of authentication (401) and authorization (403).
const (
	codeUnauthenticated = "unauthenticated"
	codeForbidden       = "forbidden"
)

// AuthConfig configures bearer-token authentication. Authentication is on when Tokens or JWT
// is set (and Disabled is not). With neither, it is off, which New accepts only when Addr is
// a loopback address (127.0.0.0/8, ::1, localhost) or Disabled is true.
//
// Scopes grant routes:
//   - invoke:<tenant>/<namespace>/<name>: POST /v1/functions/{tenant}/{namespace}/{name}/invoke
//     and POST /function/{name} (as public/default/{name});
//   - publish:<tenant>/<namespace>/<topic>: POST /v1/topics/{tenant}/{namespace}/{topic};
//   - read: GET /v1/functions…, GET /v1/invocations/{id} and /v1/invocations/{id}/events.
//
// Any segment of invoke and publish may be *, and invoke:* and publish:* grant everything of
// their kind. /healthz, /readyz, /metrics and /openapi.yaml are always open.
type AuthConfig struct {
	// Tokens are static bearer tokens, each with its scopes. A token uses the characters of
	// RFC 6750 (letters, digits, - . _ ~ + / and trailing =). Compared in constant time.
	Tokens []StaticToken
	// JWT, when set, accepts signed JWTs (HS256 or RS256) whose scopes are in a claim.
	JWT *JWTConfig
	// Disabled turns authentication off even when Tokens or JWT are set, and allows a
	// non-loopback Addr without it (New then logs a warning).
	Disabled bool
}

// StaticToken is one static bearer token and the scopes it grants.
type StaticToken struct {
	Token  string
	Scopes []string
}

// JWTConfig verifies JWT bearer tokens. The algorithm is pinned by the key: an HS256 token
// is checked only against HS256Secret and an RS256 token only against RS256PublicKeys; other
// algorithms ("none" included) are refused. exp is required; exp, nbf and iat are checked
// with Leeway.
type JWTConfig struct {
	// HS256Secret verifies HS256 tokens; at least 32 bytes. Empty refuses HS256.
	HS256Secret []byte
	// RS256PublicKeys verify RS256 tokens (any key may match); at least 2048 bits each. Empty
	// refuses RS256. ParseRSAPublicKeys reads them from PEM.
	RS256PublicKeys []*rsa.PublicKey
	// Issuer, when set, must equal the iss claim.
	Issuer string
	// Audience, when set, must be the aud claim or one of its values.
	Audience string
	// ScopeClaim names the claim holding the scopes: a space-separated string or an array of
	// strings. Default "scope".
	ScopeClaim string
	// Leeway is the clock skew allowed on exp, nbf and iat. Default 30s.
	Leeway time.Duration
}

// scopeRead grants the catalogue and invocation records.
const scopeRead = "read"

func (a *AuthConfig) enabled() bool {
	return !a.Disabled && (len(a.Tokens) > 0 || a.JWT != nil)
}

func (a *AuthConfig) setDefaults() {
	if a.JWT == nil {
		return
	}
	j := *a.JWT // a copy: defaults must not write through the caller's pointer
	if j.ScopeClaim == "" {
		j.ScopeClaim = "scope"
	}
	if j.Leeway == 0 {
		j.Leeway = 30 * time.Second
	}
	a.JWT = &j
}

// validate reports every invalid auth field; addr is the listen address. Messages name
// tokens by position, never by value.
func (a *AuthConfig) validate(addr string) []error {
	var errs []error
	seen := make(map[string]int, len(a.Tokens))
	for i, t := range a.Tokens {
		if err := checkStaticToken(t); err != nil {
			errs = append(errs, fmt.Errorf("Auth.Tokens[%d]: %w", i, err))
		}
		if j, dup := seen[t.Token]; dup && t.Token != "" {
			errs = append(errs, fmt.Errorf("Auth.Tokens[%d] repeats Auth.Tokens[%d]", i, j))
		}
		seen[t.Token] = i
	}
	if j := a.JWT; j != nil {
		if len(j.HS256Secret) == 0 && len(j.RS256PublicKeys) == 0 {
			errs = append(errs, errors.New("Auth.JWT needs HS256Secret or RS256PublicKeys"))
		}
		if n := len(j.HS256Secret); n > 0 && n < 32 {
			errs = append(errs, fmt.Errorf("Auth.JWT.HS256Secret has %d bytes, fewer than 32", n))
		}
		for i, k := range j.RS256PublicKeys {
			if k == nil || k.N == nil {
				errs = append(errs, fmt.Errorf("Auth.JWT.RS256PublicKeys[%d] is nil", i))
			} else if k.N.BitLen() < 2048 {
				errs = append(errs, fmt.Errorf("Auth.JWT.RS256PublicKeys[%d] has %d bits, fewer than 2048", i, k.N.BitLen()))
			}
		}
		if j.Leeway < 0 {
			errs = append(errs, fmt.Errorf("Auth.JWT.Leeway is negative (%s)", j.Leeway))
		}
	}
	if !a.enabled() && !a.Disabled && !loopback(addr) {
		errs = append(errs, fmt.Errorf("Addr %q is not a loopback address and no authentication is configured: set Auth.Tokens or Auth.JWT, or Auth.Disabled to serve without it", addr))
	}
	return errs
}

// loopback reports whether addr (host:port) listens on loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func checkStaticToken(t StaticToken) error {
	if t.Token == "" {
		return errors.New("empty token")
	}
	if !bearerToken(t.Token) {
		return errors.New("token has characters outside RFC 6750's token68 set")
	}
	if len(t.Scopes) == 0 {
		return errors.New("no scopes")
	}
	var errs []error
	for _, sc := range t.Scopes {
		if err := checkScope(sc); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkScope checks a configured scope: read, or invoke:/publish: followed by * or three
// segments, each * or a name.
func checkScope(sc string) error {
	if sc == scopeRead {
		return nil
	}
	kind, res, _ := strings.Cut(sc, ":")
	if kind != "invoke" && kind != "publish" {
		return fmt.Errorf("scope %q: want read, invoke:… or publish:…", sc)
	}
	if res == "*" {
		return nil
	}
	segs := strings.Split(res, "/")
	if len(segs) != 3 {
		return fmt.Errorf("scope %q: want %s:* or %s:<tenant>/<namespace>/<name>", sc, kind, kind)
	}
	for _, s := range segs {
		if s != "*" && !validName(s) {
			return fmt.Errorf("scope %q: segment %q is neither * nor a valid name", sc, s)
		}
	}
	return nil
}

// bearerToken reports whether s is a token68 (RFC 6750 b64token).
func bearerToken(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("-._~+/", c) >= 0) {
			return false
		}
	}
	return true
}

// ParseStaticTokens parses "token:scope,scope;token2:scope" (spaces around the separators
// are ignored, and so are empty entries) into static tokens, for configuration from the
// environment. Every error is reported; errors name entries by position, never by token.
func ParseStaticTokens(s string) ([]StaticToken, error) {
	var tokens []StaticToken
	var errs []error
	for i, entry := range strings.Split(s, ";") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		tok, scopes, found := strings.Cut(entry, ":")
		if !found {
			errs = append(errs, fmt.Errorf("entry %d: want token:scope[,scope…]", i+1))
			continue
		}
		t := StaticToken{Token: strings.TrimSpace(tok)}
		for sc := range strings.SplitSeq(scopes, ",") {
			if sc = strings.TrimSpace(sc); sc != "" {
				t.Scopes = append(t.Scopes, sc)
			}
		}
		if err := checkStaticToken(t); err != nil {
			errs = append(errs, fmt.Errorf("entry %d: %w", i+1, err))
			continue
		}
		tokens = append(tokens, t)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("trigger: parsing static tokens: %w", err)
	}
	return tokens, nil
}

// ParseRSAPublicKeys reads every RSA public key from PEM blocks "PUBLIC KEY" (PKIX) and
// "RSA PUBLIC KEY" (PKCS #1), for JWTConfig.RS256PublicKeys. Other blocks are errors.
func ParseRSAPublicKeys(data []byte) ([]*rsa.PublicKey, error) {
	var keys []*rsa.PublicKey
	for n := 1; ; n++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		switch b.Type {
		case "PUBLIC KEY":
			k, err := x509.ParsePKIXPublicKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("trigger: PEM block %d: %w", n, err)
			}
			rk, ok := k.(*rsa.PublicKey)
			if !ok {
				return nil, fmt.Errorf("trigger: PEM block %d: %T is not an RSA key", n, k)
			}
			keys = append(keys, rk)
		case "RSA PUBLIC KEY":
			k, err := x509.ParsePKCS1PublicKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("trigger: PEM block %d: %w", n, err)
			}
			keys = append(keys, k)
		default:
			return nil, fmt.Errorf("trigger: PEM block %d: type %q is not a public key", n, b.Type)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("trigger: no PEM public key found")
	}
	return keys, nil
}

// checkListener applies the loopback rule to the listener Serve was given, which may differ
// from Config.Addr (a program can listen itself). A non-TCP listener (a Unix socket) is local.
func (s *Server) checkListener(ln net.Listener) error {
	a, ok := ln.Addr().(*net.TCPAddr)
	if s.auth != nil || !ok || a.IP.IsLoopback() {
		return nil
	}
	if !s.cfg.Auth.Disabled {
		return fmt.Errorf("trigger: listener %s is not on a loopback address and no authentication is configured: set Auth.Tokens or Auth.JWT, or Auth.Disabled to serve without it", a)
	}
	if loopback(s.cfg.Addr) { // else New has warned already
		s.log.Warn("authentication disabled on a non-loopback address", "addr", a.String())
	}
	return nil
}

// authenticator checks bearer tokens. It is immutable after newAuthenticator, so safe for
// concurrent use.
type authenticator struct {
	tokens []staticGrant
	jwt    *JWTConfig
	now    func() time.Time
}

// staticGrant is a static token by its SHA-256, so every comparison has the same length.
type staticGrant struct {
	sum    [sha256.Size]byte
	scopes []string
}

// newAuthenticator returns nil when authentication is off. cfg is defaulted and valid.
func newAuthenticator(cfg AuthConfig) *authenticator {
	if !cfg.enabled() {
		return nil
	}
	a := &authenticator{jwt: cfg.JWT, now: time.Now}
	for _, t := range cfg.Tokens {
		a.tokens = append(a.tokens, staticGrant{sum: sha256.Sum256([]byte(t.Token)), scopes: t.Scopes})
	}
	return a
}

// Reasons a request is unauthenticated. They are answered to the caller and logged, so none
// carries the token.
var (
	errNoToken         = errors.New("missing bearer token")
	errMalformedHeader = errors.New("malformed Authorization header: want one \"Bearer <token>\"")
	errUnknownToken    = errors.New("invalid bearer token")
	errMalformedJWT    = errors.New("malformed token")
	errAlgorithm       = errors.New("token signing algorithm not accepted")
	errSignature       = errors.New("token signature invalid")
	errNoExpiry        = errors.New("token has no exp claim")
	errExpired         = errors.New("token expired")
	errNotYetValid     = errors.New("token not valid yet (nbf)")
	errIssuedInFuture  = errors.New("token issued in the future (iat)")
	errIssuer          = errors.New("token issuer not accepted")
	errAudience        = errors.New("token audience not accepted")
	errMalformedClaims = errors.New("malformed token claims")
)

// authenticate returns the scopes of the request's bearer token.
func (a *authenticator) authenticate(h http.Header) ([]string, error) {
	values := h.Values("Authorization")
	if len(values) == 0 {
		return nil, errNoToken
	}
	if len(values) > 1 {
		return nil, errMalformedHeader
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(values[0]), " ")
	token = strings.TrimLeft(token, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || !bearerToken(token) {
		return nil, errMalformedHeader
	}
	sum := sha256.Sum256([]byte(token))
	var scopes []string
	found := 0
	for _, g := range a.tokens { // no early exit: the time taken does not tell which token matched
		if m := subtle.ConstantTimeCompare(sum[:], g.sum[:]); m == 1 {
			scopes, found = g.scopes, 1
		}
	}
	if found == 1 {
		return scopes, nil
	}
	if a.jwt != nil && strings.Count(token, ".") == 2 {
		return a.verifyJWT(token)
	}
	return nil, errUnknownToken
}

var b64 = base64.RawURLEncoding.Strict()

// verifyJWT checks a compact JWS (RFC 7515, 7519) and returns its scopes.
func (a *authenticator) verifyJWT(token string) ([]string, error) {
	j := a.jwt
	parts := strings.Split(token, ".")
	head, err := b64.DecodeString(parts[0])
	if err != nil {
		return nil, errMalformedJWT
	}
	var hdr struct {
		Alg  string          `json:"alg"`
		Crit json.RawMessage `json:"crit"`
	}
	if json.Unmarshal(head, &hdr) != nil {
		return nil, errMalformedJWT
	}
	if hdr.Crit != nil { // extensions we would have to understand (RFC 7515 §4.1.11)
		return nil, errMalformedJWT
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return nil, errMalformedJWT
	}
	signed := []byte(parts[0] + "." + parts[1])
	switch hdr.Alg {
	case "HS256":
		if len(j.HS256Secret) == 0 {
			return nil, errAlgorithm
		}
		mac := hmac.New(sha256.New, j.HS256Secret)
		mac.Write(signed)
		if !hmac.Equal(sig, mac.Sum(nil)) {
			return nil, errSignature
		}
	case "RS256":
		if len(j.RS256PublicKeys) == 0 {
			return nil, errAlgorithm
		}
		digest := sha256.Sum256(signed)
		ok := false
		for _, k := range j.RS256PublicKeys {
			if rsa.VerifyPKCS1v15(k, crypto.SHA256, digest[:], sig) == nil {
				ok = true
				break
			}
		}
		if !ok {
			return nil, errSignature
		}
	default:
		return nil, errAlgorithm
	}

	// Only now, with the signature checked, are the claims worth reading.
	body, err := b64.DecodeString(parts[1])
	if err != nil {
		return nil, errMalformedJWT
	}
	var claims map[string]json.RawMessage
	if json.Unmarshal(body, &claims) != nil {
		return nil, errMalformedClaims
	}
	now := float64(a.now().UnixNano()) / 1e9
	leeway := j.Leeway.Seconds()
	exp, ok, err := numericDate(claims["exp"])
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, errNoExpiry
	case now >= exp+leeway:
		return nil, errExpired
	}
	if nbf, ok, err := numericDate(claims["nbf"]); err != nil {
		return nil, err
	} else if ok && now+leeway < nbf {
		return nil, errNotYetValid
	}
	if iat, ok, err := numericDate(claims["iat"]); err != nil {
		return nil, err
	} else if ok && iat > now+leeway {
		return nil, errIssuedInFuture
	}
	if j.Issuer != "" {
		var iss string
		if json.Unmarshal(claims["iss"], &iss) != nil || iss != j.Issuer {
			return nil, errIssuer
		}
	}
	if j.Audience != "" {
		auds, _, err := stringOrList(claims["aud"])
		if err != nil || !slices.Contains(auds, j.Audience) {
			return nil, errAudience
		}
	}
	raw, ok := claims[j.ScopeClaim]
	if !ok {
		return nil, nil // authenticated, but no scope: every protected route is 403
	}
	scopes, single, err := stringOrList(raw)
	if err != nil {
		return nil, errMalformedClaims
	}
	if single {
		scopes = strings.Fields(scopes[0]) // the OAuth 2.0 space-separated string
	}
	return scopes, nil
}

// numericDate decodes an optional NumericDate claim (seconds since the epoch).
func numericDate(raw json.RawMessage) (float64, bool, error) {
	if raw == nil {
		return 0, false, nil
	}
	var v float64
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0, false, errMalformedClaims
	}
	return v, true, nil
}

// stringOrList decodes a claim that is a string or an array of strings. A string comes back
// as a one-element list, with single true.
func stringOrList(raw json.RawMessage) (l []string, single bool, err error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []string{s}, true, nil
	}
	if json.Unmarshal(raw, &l) != nil {
		return nil, false, errMalformedClaims
	}
	return l, false, nil
}

// scopeGrants reports whether a granted scope covers the needed one. needed is concrete
// (read, or kind:tenant/namespace/name); granted may use * for a segment, or kind:* for all.
func scopeGrants(granted, needed string) bool {
	if granted == needed {
		return true
	}
	gk, gr, gok := strings.Cut(granted, ":")
	nk, nr, nok := strings.Cut(needed, ":")
	if !gok || !nok || gk != nk || (gk != "invoke" && gk != "publish") {
		return false
	}
	if gr == "*" {
		return true
	}
	gs, ns := strings.Split(gr, "/"), strings.Split(nr, "/")
	if len(gs) != 3 || len(ns) != 3 {
		return false
	}
	for i := range gs {
		if gs[i] != "*" && gs[i] != ns[i] {
			return false
		}
	}
	return true
}

// authorize is the middleware of a protected route: the request needs a bearer token that
// grants scope(c). With authentication off it lets everything through.
func (s *Server) authorize(scope func(c *gin.Context) string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if s.auth == nil {
			return
		}
		scopes, err := s.auth.authenticate(c.Request.Header)
		if err != nil {
			s.log.Debug("request unauthenticated", "method", c.Request.Method, "path", c.Request.URL.Path, "err", err)
			c.Header("WWW-Authenticate", `Bearer realm="fnhost"`)
			s.writeError(c, newAPIError(http.StatusUnauthorized, codeUnauthenticated, "%v", err))
			return
		}
		need := scope(c)
		for _, sc := range scopes {
			if scopeGrants(sc, need) {
				return
			}
		}
		if alt, ok := c.Get(keyAltScope); ok { // see invocationScope
			for _, sc := range scopes {
				if scopeGrants(sc, alt.(string)) {
					return
				}
			}
		}
		if v, ok := c.Get(keyScopeUnknown); ok { // the alternative could not be looked up
			e := newAPIError(http.StatusServiceUnavailable, codeUnavailable, "checking the token's scopes: %v", v)
			e.retryAfter = true
			s.writeError(c, e)
			return
		}
		s.log.Debug("request forbidden", "method", c.Request.Method, "path", c.Request.URL.Path, "scope", need)
		s.writeError(c, newAPIError(http.StatusForbidden, codeForbidden, "the token does not grant scope %q", need))
	}
}

// invokeScope is the scope an invoke route needs; /function/{name} is public/default.
func invokeScope(c *gin.Context) string {
	tenant, namespace := c.Param("tenant"), c.Param("namespace")
	if tenant == "" {
		tenant, namespace = "public", "default"
	}
	return "invoke:" + tenant + "/" + namespace + "/" + c.Param("name")
}

// publishScope is the scope POST /v1/topics/{tenant}/{namespace}/{topic} needs.
func publishScope(c *gin.Context) string {
	return "publish:" + c.Param("tenant") + "/" + c.Param("namespace") + "/" + c.Param("topic")
}

// readScope is the scope of the catalogue.
func readScope(*gin.Context) string { return scopeRead }

// keyAltScope is the gin context key of a second scope that also opens a route;
// keyScopeUnknown holds the error that kept it from being known.
const (
	keyAltScope     = "fnhost.alt_scope"
	keyScopeUnknown = "fnhost.scope_unknown"
)

// invocationScope is the scope of an invocation's record and events: read; or, as the
// alternative authorize also accepts, invoke on the invocation's function, looked up in the
// replay buffer, then in the store. An invocation found in neither needs read.
func (s *Server) invocationScope(c *gin.Context) string {
	id := c.Param("id")
	if !validID(id) {
		return scopeRead
	}
	var fn Function
	if j := s.journals.get(id); j != nil {
		fn = j.fn
	} else if rec, err := s.store.Get(c.Request.Context(), id); err == nil {
		fn = rec.Function
	} else if !errors.Is(err, ErrInvocationNotFound) {
		c.Set(keyScopeUnknown, err) // a store failure is 503, not 403
	}
	if fn.Name != "" {
		c.Set(keyAltScope, "invoke:"+fn.String())
	}
	return scopeRead
}
