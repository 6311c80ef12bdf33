package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/fnhost/fnhost/trigger"
)

// authFromEnv reads the trigger's authentication settings:
//
//	FNHOST_TRIGGER_TOKENS          static bearer tokens: token:scope,scope;token2:scope
//	FNHOST_TRIGGER_JWT_HS256_SECRET  secret (≥ 32 bytes) for HS256 JWTs
//	FNHOST_TRIGGER_JWT_RS256_KEYS  path of a PEM file of RSA public keys for RS256 JWTs
//	FNHOST_TRIGGER_JWT_ISSUER, FNHOST_TRIGGER_JWT_AUDIENCE  required iss and aud, when set
//	FNHOST_TRIGGER_AUTH_DISABLED   true: no authentication even off loopback (a warning)
//
// Without tokens or JWT settings authentication is off, which the trigger allows on loopback
// addresses only.
func authFromEnv(env []string) (trigger.AuthConfig, error) {
	var a trigger.AuthConfig
	var jwt trigger.JWTConfig
	useJWT := false
	var errs []error
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "FNHOST_TRIGGER_TOKENS":
			t, err := trigger.ParseStaticTokens(v)
			if err != nil {
				// The value holds secrets: name the variable, not its content.
				errs = append(errs, fmt.Errorf("FNHOST_TRIGGER_TOKENS: %w", err))
			}
			a.Tokens = t
		case "FNHOST_TRIGGER_JWT_HS256_SECRET":
			jwt.HS256Secret, useJWT = []byte(v), true
		case "FNHOST_TRIGGER_JWT_RS256_KEYS":
			pem, err := os.ReadFile(v)
			if err == nil {
				jwt.RS256PublicKeys, err = trigger.ParseRSAPublicKeys(pem)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("FNHOST_TRIGGER_JWT_RS256_KEYS=%q: %w", v, err))
			}
			useJWT = true
		case "FNHOST_TRIGGER_JWT_ISSUER":
			jwt.Issuer = v
		case "FNHOST_TRIGGER_JWT_AUDIENCE":
			jwt.Audience = v
		case "FNHOST_TRIGGER_AUTH_DISABLED":
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("FNHOST_TRIGGER_AUTH_DISABLED=%q: want true or false", v))
			}
			a.Disabled = b
		}
	}
	if useJWT {
		a.JWT = &jwt
	}
	return a, errors.Join(errs...)
}
