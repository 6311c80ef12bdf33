package instance

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	pulsarlog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/prometheus/client_golang/prometheus"
)

// clientOptions builds the Pulsar client options: the worker's broker URL, TLS settings and
// authentication plugin.
func clientOptions(c *Config, logger *slog.Logger) (pulsar.ClientOptions, error) {
	auth, err := authentication(c.AuthPlugin, c.AuthParams)
	if err != nil {
		return pulsar.ClientOptions{}, err
	}
	return pulsar.ClientOptions{
		URL:                        c.ServiceURL,
		Authentication:             auth,
		TLSTrustCertsFilePath:      c.TLSTrustCertsFilePath,
		TLSAllowInsecureConnection: c.TLSAllowInsecure,
		TLSValidateHostname:        c.TLSValidateHostname,
		ConnectionTimeout:          10 * time.Second,
		OperationTimeout:           30 * time.Second,
		Logger:                     pulsarlog.NewLoggerWithSlog(logger),
		// The client registers its own metrics; keep them out of the global registry and
		// out of the function's metrics, which must carry Pulsar Functions' names only.
		MetricsRegisterer: prometheus.NewRegistry(),
	}, nil
}

// authentication maps the worker's Java plugin class name to the Go client's provider.
func authentication(plugin, params string) (pulsar.Authentication, error) {
	if err := checkAuth(plugin, params); err != nil {
		return nil, err
	}
	switch plugin {
	case authToken:
		switch {
		case strings.HasPrefix(params, "token:"):
			return pulsar.NewAuthenticationToken(strings.TrimPrefix(params, "token:")), nil
		case strings.HasPrefix(params, "file:"):
			// Java accepts file:///path and file:/path; both name an absolute path.
			path := "/" + strings.TrimLeft(strings.TrimPrefix(params, "file:"), "/")
			return pulsar.NewAuthenticationTokenFromFile(path), nil
		default:
			// Java's AuthenticationToken takes a bare token too.
			return pulsar.NewAuthenticationToken(params), nil
		}
	case authTLS:
		cert, key, err := tlsAuthFiles(params)
		if err != nil {
			return nil, err
		}
		return pulsar.NewAuthenticationTLS(cert, key), nil
	case authOAuth2:
		var m map[string]string
		if err := json.Unmarshal([]byte(params), &m); err != nil {
			return nil, fmt.Errorf("OAuth2 authentication parameters: %w", err)
		}
		if m["type"] == "" {
			m["type"] = "client_credentials"
		}
		return pulsar.NewAuthenticationOAuth2(m), nil
	}
	return nil, nil
}
