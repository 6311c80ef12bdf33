package trigger

import (
	"bytes"
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

var (
	testSecret = []byte("0123456789abcdef0123456789abcdef") // 32 bytes
	// testRSAKey and otherRSAKey are generated once: 2048-bit keys are slow under -race.
	testRSAKey  = sync.OnceValue(func() *rsa.PrivateKey { return genRSA() })
	otherRSAKey = sync.OnceValue(func() *rsa.PrivateKey { return genRSA() })
)

func genRSA() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err) // test setup only
	}
	return k
}

// signJWT builds a compact JWT; alg HS256 uses key as the HMAC secret ([]byte), RS256 signs
// with key (*rsa.PrivateKey); any other alg gets an empty signature.
func signJWT(t testing.TB, alg string, key any, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := enc(map[string]any{"alg": alg, "typ": "JWT"}) + "." + enc(claims)
	var sig []byte
	switch alg {
	case "HS256":
		m := hmac.New(sha256.New, key.([]byte))
		m.Write([]byte(input))
		sig = m.Sum(nil)
	case "RS256":
		d := sha256.Sum256([]byte(input))
		var err error
		sig, err = rsa.SignPKCS1v15(rand.Reader, key.(*rsa.PrivateKey), crypto.SHA256, d[:])
		require.NoError(t, err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// claims returns valid claims (iss fnhost-test, aud trigger, an hour of validity) with scope,
// then applies the overrides (nil deletes a claim).
func claims(scope any, overrides map[string]any) map[string]any {
	now := time.Now().Unix()
	c := map[string]any{"iss": "fnhost-test", "aud": "trigger", "iat": now, "nbf": now, "exp": now + 3600, "scope": scope}
	for k, v := range overrides {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

// authServer has static tokens and JWTs of both algorithms, with iss and aud checks.
func authServer(t testing.TB) *Server {
	t.Helper()
	return newServer(t, newFake(), func(c *Config) {
		c.Publisher = &fakePublisher{}
		c.Auth = AuthConfig{
			Tokens: []StaticToken{
				{Token: "static-echo", Scopes: []string{"invoke:public/default/echo"}},
				{Token: "static-all", Scopes: []string{"invoke:*", "publish:*", "read"}},
			},
			JWT: &JWTConfig{
				HS256Secret: testSecret, RS256PublicKeys: []*rsa.PublicKey{&testRSAKey().PublicKey},
				Issuer: "fnhost-test", Audience: "trigger",
			},
		}
	})
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	s := authServer(t)
	hs := func(c map[string]any) string { return signJWT(t, "HS256", testSecret, c) }
	rs := func(c map[string]any) string { return signJWT(t, "RS256", testRSAKey(), c) }
	now := time.Now().Unix()
	tests := []struct {
		name    string
		headers map[string]string
		status  int
		message string
	}{
		{name: "static token", headers: bearer("static-echo"), status: 200},
		{name: "scheme is case-insensitive", headers: map[string]string{"Authorization": "bearer static-echo"}, status: 200},
		{name: "unknown static token", headers: bearer("static-nope"), status: 401, message: "invalid bearer token"},
		{name: "missing header", status: 401, message: "missing bearer token"},
		{name: "wrong scheme", headers: map[string]string{"Authorization": "Basic c3RhdGljLWVjaG86"}, status: 401, message: "malformed"},
		{name: "empty bearer", headers: map[string]string{"Authorization": "Bearer "}, status: 401, message: "malformed"},
		{name: "token with bad characters", headers: bearer("static echo"), status: 401, message: "malformed"},
		{name: "HS256 valid", headers: bearer(hs(claims("invoke:public/default/echo", nil))), status: 200},
		{name: "HS256 scope array", headers: bearer(hs(claims([]string{"read", "invoke:public/*/*"}, nil))), status: 200},
		{name: "HS256 within leeway", headers: bearer(hs(claims("invoke:*", map[string]any{"exp": now - 5}))), status: 200},
		{name: "HS256 expired", headers: bearer(hs(claims("invoke:*", map[string]any{"exp": now - 3600}))), status: 401, message: "expired"},
		{name: "HS256 without exp", headers: bearer(hs(claims("invoke:*", map[string]any{"exp": nil}))), status: 401, message: "no exp"},
		{name: "HS256 nbf in the future", headers: bearer(hs(claims("invoke:*", map[string]any{"nbf": now + 3600}))), status: 401, message: "not valid yet"},
		{name: "HS256 iat in the future", headers: bearer(hs(claims("invoke:*", map[string]any{"iat": now + 3600}))), status: 401, message: "issued in the future"},
		{name: "HS256 bad signature", headers: bearer(signJWT(t, "HS256", []byte("another-secret-of-32-bytes-long!"), claims("invoke:*", nil))), status: 401, message: "signature"},
		{name: "HS256 tampered claims", headers: bearer(tamper(t, hs(claims("read", nil)), claims("invoke:*", nil))), status: 401, message: "signature"},
		{name: "wrong issuer", headers: bearer(hs(claims("invoke:*", map[string]any{"iss": "evil"}))), status: 401, message: "issuer"},
		{name: "missing issuer", headers: bearer(hs(claims("invoke:*", map[string]any{"iss": nil}))), status: 401, message: "issuer"},
		{name: "wrong audience", headers: bearer(hs(claims("invoke:*", map[string]any{"aud": "other"}))), status: 401, message: "audience"},
		{name: "audience in a list", headers: bearer(hs(claims("invoke:*", map[string]any{"aud": []string{"other", "trigger"}}))), status: 200},
		{name: "alg none", headers: bearer(signJWT(t, "none", nil, claims("invoke:*", nil))), status: 401, message: "algorithm"},
		{name: "alg HS512", headers: bearer(signJWT(t, "HS512", nil, claims("invoke:*", nil))), status: 401, message: "algorithm"},
		{name: "RS256 valid", headers: bearer(rs(claims("invoke:public/default/echo", nil))), status: 200},
		{name: "RS256 unknown key", headers: bearer(signJWT(t, "RS256", otherRSAKey(), claims("invoke:*", nil))), status: 401, message: "signature"},
		{name: "malformed JWT", headers: bearer("a.b.c"), status: 401, message: "malformed"},
		{name: "valid token, scope missing", headers: bearer(hs(claims("invoke:public/default/other", nil))), status: 403,
			message: `the token does not grant scope "invoke:public/default/echo"`},
		{name: "valid token, no scope claim", headers: bearer(hs(claims(nil, map[string]any{"scope": nil}))), status: 403, message: "invoke:public/default/echo"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := do(s, http.MethodPost, "/function/echo", "hi", tc.headers)
			require.Equal(t, tc.status, w.Code, w.Body.String())
			if tc.status == 200 {
				assert.Equal(t, "hi", w.Body.String())
				return
			}
			e := errorOf(t, w)
			assert.Contains(t, e.Message, tc.message)
			if tc.status == 401 {
				assert.Equal(t, codeUnauthenticated, e.Code)
				assert.Equal(t, `Bearer realm="fnhost"`, w.Header().Get("WWW-Authenticate"))
			} else {
				assert.Equal(t, codeForbidden, e.Code)
				assert.Empty(t, w.Header().Get("WWW-Authenticate"))
			}
		})
	}
}

// tamper replaces the claims of a signed token, keeping its header and signature.
func tamper(t testing.TB, token string, c map[string]any) string {
	t.Helper()
	parts := strings.Split(token, ".")
	b, err := json.Marshal(c)
	require.NoError(t, err)
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
}

// TestJWTAlgorithmPinnedByKey: a token is verified only with a key of its algorithm, so an
// HS256 token "signed" with the RSA public key (the classic confusion) is refused.
func TestJWTAlgorithmPinnedByKey(t *testing.T) {
	t.Parallel()
	pub := &testRSAKey().PublicKey
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(pub))})
	rsOnly := newServer(t, newFake(), func(c *Config) { c.Auth.JWT = &JWTConfig{RS256PublicKeys: []*rsa.PublicKey{pub}} })
	hsOnly := newServer(t, newFake(), func(c *Config) { c.Auth.JWT = &JWTConfig{HS256Secret: testSecret} })
	tests := []struct {
		name   string
		s      *Server
		token  string
		status int
	}{
		{"HS256 token, RS256-only config", rsOnly, signJWT(t, "HS256", testSecret, claims("invoke:*", nil)), 401},
		{"HS256 signed with the RSA public key", rsOnly, signJWT(t, "HS256", pubPEM, claims("invoke:*", nil)), 401},
		{"RS256 token, RS256-only config", rsOnly, signJWT(t, "RS256", testRSAKey(), claims("invoke:*", nil)), 200},
		{"RS256 token, HS256-only config", hsOnly, signJWT(t, "RS256", testRSAKey(), claims("invoke:*", nil)), 401},
		{"HS256 token, HS256-only config", hsOnly, signJWT(t, "HS256", testSecret, claims("invoke:*", nil)), 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := do(tc.s, http.MethodPost, "/function/echo", "", bearer(tc.token))
			require.Equal(t, tc.status, w.Code, w.Body.String())
			if tc.status == 401 {
				assert.Contains(t, errorOf(t, w).Message, "algorithm")
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err) // test setup only
	}
	return v
}

// TestAuthorizeRoutes: each route needs its scope; wildcards work per segment.
func TestAuthorizeRoutes(t *testing.T) {
	t.Parallel()
	f := newFake()
	s := newServer(t, f, func(c *Config) {
		c.Publisher = &fakePublisher{}
		c.Auth.JWT = &JWTConfig{HS256Secret: testSecret}
	})
	// An async record to read.
	w := do(s, http.MethodPost, "/function/echo", "x", map[string]string{
		"Prefer": "respond-async", "Authorization": "Bearer " + signJWT(t, "HS256", testSecret, claims("invoke:*", nil))})
	require.Equal(t, 202, w.Code, w.Body.String())
	record := "/v1/invocations/" + w.Header().Get(headerInvocationID)

	const (
		shortEcho = "/function/echo"
		longEcho  = "/v1/functions/public/default/echo/invoke"
		tenantFn  = "/v1/functions/acme/prod/echo/invoke"
		topic     = "/v1/topics/public/default/events"
	)
	tests := []struct {
		name         string
		scope        string
		method, path string
		allowed      bool
	}{
		{"exact invoke, short form", "invoke:public/default/echo", "POST", shortEcho, true},
		{"exact invoke, canonical form", "invoke:public/default/echo", "POST", longEcho, true},
		{"exact invoke, other function", "invoke:public/default/echo2", "POST", shortEcho, false},
		{"name wildcard", "invoke:public/default/*", "POST", longEcho, true},
		{"name wildcard, other namespace", "invoke:public/default/*", "POST", tenantFn, false},
		{"tenant wildcard", "invoke:*/prod/echo", "POST", tenantFn, true},
		{"all segments wildcard", "invoke:*/*/*", "POST", tenantFn, true},
		{"invoke:*", "invoke:*", "POST", tenantFn, true},
		{"too few segments grant nothing", "invoke:acme/*", "POST", tenantFn, false},
		{"prefix is not a wildcard", "invoke:public/default/ech", "POST", shortEcho, false},
		{"invoke does not publish", "invoke:*", "POST", topic, false},
		{"publish exact", "publish:public/default/events", "POST", topic, true},
		{"publish wildcard", "publish:public/*/*", "POST", topic, true},
		{"publish other topic", "publish:public/default/other", "POST", topic, false},
		{"publish does not invoke", "publish:*", "POST", shortEcho, false},
		{"read catalogue", "read", "GET", "/v1/functions", true},
		{"read one function", "read", "GET", "/v1/functions/public/default/echo", true},
		{"read record", "read", "GET", record, true},
		{"read record events", "read", "GET", record + "/events", true},
		{"invoke does not read", "invoke:*", "GET", "/v1/functions", false},
		{"invoke on the function reads its record", "invoke:*", "GET", record, true},
		{"invoke on the function resumes its events", "invoke:public/default/echo", "GET", record + "/events", true},
		{"invoke on another function does not read the record", "invoke:public/default/other", "GET", record, false},
		{"invoke does not read unknown records", "invoke:*", "GET", "/v1/invocations/abcdefghijklmnopqrstuvwxyz", false},
		{"read does not invoke", "read", "POST", shortEcho, false},
		{"read:* is not read", "read:*", "GET", "/v1/functions", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := do(s, tc.method, tc.path, "x", bearer(signJWT(t, "HS256", testSecret, claims(tc.scope, nil))))
			if tc.allowed { // past auth; acme/prod/echo is then 404, which is the handler's answer
				assert.NotContains(t, []int{401, 403}, w.Code, w.Body.String())
				return
			}
			require.Equal(t, 403, w.Code, w.Body.String())
			assert.Equal(t, codeForbidden, errorOf(t, w).Code)
		})
	}
}

func TestOpenRoutesStayOpen(t *testing.T) {
	t.Parallel()
	s := authServer(t)
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/openapi.yaml"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			w := do(s, http.MethodGet, path, "", nil)
			assert.Equal(t, 200, w.Code, w.Body.String())
		})
	}
	// Protected routes are protected before anything else answers.
	for _, r := range s.engine.Routes() {
		if strings.HasPrefix(r.Path, "/v1/") || strings.HasPrefix(r.Path, "/function/") {
			w := do(s, r.Method, strings.NewReplacer(":tenant", "t", ":namespace", "n", ":name", "f", ":topic", "x", ":id", "i").Replace(r.Path), "", nil)
			assert.Equal(t, 401, w.Code, "%s %s", r.Method, r.Path)
		}
	}
}

func TestAuthOffOnLoopbackOnly(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		addr     string
		auth     AuthConfig
		err      string
		warnings int
	}{
		{name: "default addr, no auth", addr: ""},
		{name: "127.0.0.2, no auth", addr: "127.0.0.2:80"},
		{name: "::1, no auth", addr: "[::1]:80"},
		{name: "localhost, no auth", addr: "localhost:80"},
		{name: "all interfaces, no auth", addr: ":8088", err: "not a loopback address"},
		{name: "0.0.0.0, no auth", addr: "0.0.0.0:8088", err: "not a loopback address"},
		{name: "public IP, no auth", addr: "192.0.2.1:8088", err: "not a loopback address"},
		{name: "hostname, no auth", addr: "example.com:8088", err: "not a loopback address"},
		{name: "all interfaces, tokens", addr: ":8088", auth: AuthConfig{Tokens: []StaticToken{{Token: "t", Scopes: []string{"read"}}}}},
		{name: "all interfaces, JWT", addr: ":8088", auth: AuthConfig{JWT: &JWTConfig{HS256Secret: testSecret}}},
		{name: "all interfaces, disabled", addr: ":8088", auth: AuthConfig{Disabled: true}, warnings: 1},
		{name: "loopback, disabled", addr: "127.0.0.1:8088", auth: AuthConfig{Disabled: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			_, err := New(Config{Invoker: newFake(), Addr: tc.addr, Auth: tc.auth,
				Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.warnings, strings.Count(logs.String(), "authentication disabled on a non-loopback address"), logs.String())
		})
	}
}

// TestDisabledServesWithoutToken: Disabled turns auth off even with tokens configured.
func TestDisabledServesWithoutToken(t *testing.T) {
	t.Parallel()
	s := newServer(t, newFake(), func(c *Config) {
		c.Addr = "0.0.0.0:8088"
		c.Auth = AuthConfig{Disabled: true, Tokens: []StaticToken{{Token: "t", Scopes: []string{"read"}}}}
	})
	w := do(s, http.MethodPost, "/function/echo", "hi", nil)
	require.Equal(t, 200, w.Code, w.Body.String())
}

func TestAuthConfigValidate(t *testing.T) {
	t.Parallel()
	small := must(rsa.GenerateKey(rand.Reader, 1024)) //nolint:gosec // deliberately too small, to be refused
	tests := []struct {
		name string
		auth AuthConfig
		errs []string
	}{
		{name: "bad tokens", auth: AuthConfig{Tokens: []StaticToken{
			{Token: "", Scopes: []string{"read"}},
			{Token: "secret value", Scopes: []string{"read"}},
			{Token: "ok", Scopes: nil},
			{Token: "ok2", Scopes: []string{"invoke:public/default", "write", "publish:a/b/c/d", "invoke:a/b/bad name"}},
			{Token: "dup", Scopes: []string{"read"}},
			{Token: "dup", Scopes: []string{"read"}},
		}}, errs: []string{
			"Auth.Tokens[0]: empty token", "Auth.Tokens[1]: token has characters", "Auth.Tokens[2]: no scopes",
			`scope "invoke:public/default"`, `scope "write"`, `scope "publish:a/b/c/d"`, `segment "bad name"`,
			"Auth.Tokens[5] repeats Auth.Tokens[4]",
		}},
		{name: "JWT without keys", auth: AuthConfig{JWT: &JWTConfig{}}, errs: []string{"needs HS256Secret or RS256PublicKeys"}},
		{name: "JWT weak keys", auth: AuthConfig{JWT: &JWTConfig{HS256Secret: []byte("short"), RS256PublicKeys: []*rsa.PublicKey{&small.PublicKey, nil}}},
			errs: []string{"HS256Secret has 5 bytes", "RS256PublicKeys[0] has 1024 bits", "RS256PublicKeys[1] is nil"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(Config{Invoker: newFake(), Auth: tc.auth})
			require.Error(t, err)
			for _, e := range tc.errs {
				assert.ErrorContains(t, err, e)
			}
			assert.NotContains(t, err.Error(), "secret value", "errors never carry a token")
		})
	}
}

func TestJWTDefaultsDoNotWriteThrough(t *testing.T) {
	t.Parallel()
	j := &JWTConfig{HS256Secret: testSecret}
	s := newServer(t, newFake(), func(c *Config) { c.Auth.JWT = j })
	assert.Empty(t, j.ScopeClaim)
	assert.Equal(t, "scope", s.cfg.Auth.JWT.ScopeClaim)
	assert.Equal(t, 30*time.Second, s.cfg.Auth.JWT.Leeway)
}

func TestJWTCustomScopeClaim(t *testing.T) {
	t.Parallel()
	s := newServer(t, newFake(), func(c *Config) { c.Auth.JWT = &JWTConfig{HS256Secret: testSecret, ScopeClaim: "scp"} })
	tok := signJWT(t, "HS256", testSecret, claims(nil, map[string]any{"scope": nil, "scp": []string{"invoke:public/default/echo"}}))
	w := do(s, http.MethodPost, "/function/echo", "", bearer(tok))
	assert.Equal(t, 200, w.Code, w.Body.String())
}

func TestParseStaticTokens(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []StaticToken
		errs []string
	}{
		{name: "empty", in: ""},
		{name: "two tokens", in: "abc:invoke:public/default/*,read; def:publish:*;",
			want: []StaticToken{{Token: "abc", Scopes: []string{"invoke:public/default/*", "read"}}, {Token: "def", Scopes: []string{"publish:*"}}}},
		{name: "errors name entries, not tokens", in: "s3cr3t;t2:;t3:nope;t4:read",
			errs: []string{"entry 1: want token:scope", "entry 2: no scopes", `entry 3: scope "nope"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseStaticTokens(tc.in)
			if len(tc.errs) > 0 {
				require.Error(t, err)
				for _, e := range tc.errs {
					assert.ErrorContains(t, err, e)
				}
				assert.NotContains(t, err.Error(), "s3cr3t")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestParseRSAPublicKeys(t *testing.T) {
	t.Parallel()
	pub := &testRSAKey().PublicKey
	data := append(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(pub))}),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(pub)})...)
	keys, err := ParseRSAPublicKeys(data)
	require.NoError(t, err)
	require.Len(t, keys, 2)
	assert.True(t, keys[0].Equal(pub))
	assert.True(t, keys[1].Equal(pub))

	_, err = ParseRSAPublicKeys([]byte("nothing"))
	require.ErrorContains(t, err, "no PEM public key")
	_, err = ParseRSAPublicKeys(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}))
	require.ErrorContains(t, err, "not a public key")
}

// TestOpenAPIAuth: the document declares bearer auth, the open routes opt out, every other
// operation documents 401 and 403, and the auth error codes are the ones the code uses.
func TestOpenAPIAuth(t *testing.T) {
	t.Parallel()
	var doc struct {
		Security []map[string][]string `yaml:"security"`
		Paths    map[string]map[string]struct {
			Security  *[]any
			Responses map[string]any
		}
		Components struct {
			SecuritySchemes map[string]struct{ Type, Scheme string } `yaml:"securitySchemes"`
			Schemas         struct {
				AuthError struct {
					Properties struct {
						Error struct {
							Properties struct {
								Code struct {
									Enum []string `yaml:"enum"`
								} `yaml:"code"`
							} `yaml:"properties"`
						} `yaml:"error"`
					} `yaml:"properties"`
				} `yaml:"AuthError"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	require.NoError(t, yaml.Unmarshal(openAPI, &doc))
	require.NotEmpty(t, doc.Paths)
	assert.Equal(t, []map[string][]string{{"bearerAuth": {}}}, doc.Security)
	assert.Equal(t, "http", doc.Components.SecuritySchemes["bearerAuth"].Type)
	assert.Equal(t, "bearer", doc.Components.SecuritySchemes["bearerAuth"].Scheme)
	assert.ElementsMatch(t, []string{codeUnauthenticated, codeForbidden}, doc.Components.Schemas.AuthError.Properties.Error.Properties.Code.Enum)
	open := map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true, "/openapi.yaml": true}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if open[path] {
				require.NotNil(t, op.Security, "%s %s", method, path)
				assert.Empty(t, *op.Security, "%s %s", method, path)
				continue
			}
			assert.Nil(t, op.Security, "%s %s", method, path)
			assert.Contains(t, op.Responses, "401", "%s %s", method, path)
			assert.Contains(t, op.Responses, "403", "%s %s", method, path)
		}
	}
}

// TestServeRefusesNonLoopbackListener: the loopback rule also holds for a listener the
// program opened itself. Serve must fail before serving, so no shutdown is needed.
func TestServeRefusesNonLoopbackListener(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	require.NoError(t, err)
	s := newServer(t, newFake(), nil) // Addr is the loopback default
	err = s.Serve(t.Context(), ln)
	require.ErrorContains(t, err, "not on a loopback address")
	_, err = ln.Accept()
	require.ErrorIs(t, err, net.ErrClosed, "Serve closes ln")
}

// TestServeDisabledNonLoopbackWarns: with Auth.Disabled, Serve accepts the listener and warns
// once (New did not, its Addr being loopback). A cancelled ctx makes Serve stop at once.
func TestServeDisabledNonLoopbackWarns(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	require.NoError(t, err)
	var logs bytes.Buffer
	s := newServer(t, newFake(), func(c *Config) {
		c.Auth.Disabled = true
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.NoError(t, s.Serve(ctx, ln))
	assert.Equal(t, 1, strings.Count(logs.String(), "authentication disabled on a non-loopback address"), logs.String())
}

// downStore is an InvocationStore that cannot be read.
type downStore struct{}

func (downStore) Put(context.Context, Invocation) error { return errors.New("store down") }
func (downStore) Get(context.Context, string) (Invocation, error) {
	return Invocation{}, errors.New("store down")
}

// TestInvocationScopeStoreDown: when the store cannot say whose an invocation is, a caller
// with only an invoke scope gets 503 (retry later), not 403.
func TestInvocationScopeStoreDown(t *testing.T) {
	t.Parallel()
	s := newServer(t, newFake(), func(c *Config) {
		c.Store = downStore{}
		c.Auth.JWT = &JWTConfig{HS256Secret: testSecret}
	})
	path := "/v1/invocations/abcdefghijklmnopqrstuvwxyz"
	w := do(s, http.MethodGet, path, "", bearer(signJWT(t, "HS256", testSecret, claims("invoke:*", nil))))
	assert.Equal(t, http.StatusServiceUnavailable, w.Code, w.Body.String())
	assert.NotEmpty(t, w.Header().Get("Retry-After"))
}
