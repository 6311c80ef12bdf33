package trigger

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// TestOpenAPIMatchesRoutes keeps openapi.yaml true: every registered gin route is documented
// and every documented operation is registered.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	var doc struct {
		OpenAPI string                               `yaml:"openapi"`
		Paths   map[string]map[string]map[string]any `yaml:"paths"`
	}
	require.NoError(t, yaml.Unmarshal(openAPI, &doc))
	require.True(t, strings.HasPrefix(doc.OpenAPI, "3.0"))

	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	s := newServer(t, newFake(), nil)
	param := regexp.MustCompile(`:([A-Za-z]+)`)
	var registered []string
	for _, r := range s.engine.Routes() {
		registered = append(registered, r.Method+" "+param.ReplaceAllString(r.Path, "{$1}"))
	}
	slices.Sort(documented)
	slices.Sort(registered)
	assert.Equal(t, registered, documented)

	// And it is served.
	w := do(s, "GET", "/openapi.yaml", "", nil)
	require.Equal(t, 200, w.Code)
	assert.Equal(t, "application/yaml", w.Header().Get("Content-Type"))
	assert.Equal(t, openAPI, w.Body.Bytes())
}

// TestOpenAPIErrorCodes: the error codes the code uses are the ones the document lists.
func TestOpenAPIErrorCodes(t *testing.T) {
	t.Parallel()
	var doc struct {
		Components struct {
			Schemas struct {
				Error struct {
					Properties struct {
						Error struct {
							Properties struct {
								Code struct {
									Enum []string `yaml:"enum"`
								} `yaml:"code"`
							} `yaml:"properties"`
						} `yaml:"error"`
					} `yaml:"properties"`
				} `yaml:"Error"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	require.NoError(t, yaml.Unmarshal(openAPI, &doc))
	assert.ElementsMatch(t, []string{codeInvalidHeader, codeInvalidName, codeInvalidCallbackURL, codePayloadTooLarge,
		codeBodyUnreadable, codeFunctionNotFound, codeInvocationNotFound, codeReplayExpired, codeNotFound,
		codeMethodNotAllowed, codeTooManyRequests, codeFunctionError, codeFunctionPanic, codeOutputTooLarge,
		codeCanceled, codeDeadline, codeUnavailable, codeNotSupported, codeNotReady, codeInternal},
		doc.Components.Schemas.Error.Properties.Error.Properties.Code.Enum)
}
