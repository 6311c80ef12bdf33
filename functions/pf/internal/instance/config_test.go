package instance

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	pb "github.com/fnhost/fnhost/functions/pf/internal/pfproto"
)

// workerConf is a configuration as the Pulsar 4.0 worker writes it (captured from a real
// `functions create --go`), with functionDetails given by the caller.
func workerConf(t *testing.T, details string, edit func(m map[string]any)) string {
	t.Helper()
	m := map[string]any{
		"pulsarServiceURL": "pulsar://127.0.0.1:6650", "stateStorageServiceUrl": "", "pulsarWebServiceUrl": "",
		"instanceID": 2, "funcID": "f-id", "funcVersion": "f-ver", "maxBufTuples": 1024, "port": 40005,
		"clusterName": "standalone", "killAfterIdleMs": 0, "expectedHealthCheckInterval": 0,
		"tenant": "public", "nameSpace": "default", "name": "echo", "className": "", "logTopic": "",
		"processingGuarantees": 0, "secretsMap": "", "userConfig": `{"greeting":"hi","n":3}`,
		"clientAuthenticationPlugin": "", "clientAuthenticationParameters": "", "tlsTrustCertsFilePath": "",
		"tlsHostnameVerificationEnable": false, "tlsAllowInsecureConnection": false, "runtime": 3,
		"autoAck": true, "parallelism": 1, "subscriptionType": 0, "timeoutMs": 0, "subscriptionName": "",
		"cleanupSubscription": true, "subscriptionPosition": 0,
		"sourceInputSpecs": map[string]string{"persistent://public/default/in": "{}"},
		"sourceSpecsTopic": "persistent://public/default/in",
		"sourceSchemaType": "", "receiverQueueSize": 0,
		"sinkSpecsTopic": "persistent://public/default/out",
		"sinkSchemaType": "", "cpu": 1.0, "ram": 1073741824, "disk": 10737418240,
		"maxMessageRetries": 0, "deadLetterTopic": "", "metricsPort": 41109,
		"functionDetails": details, "regexPatternSubscription": false,
	}
	if edit != nil {
		edit(m)
	}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return string(b)
}

const realDetails = `{"tenant":"public","namespace":"default","name":"echo","runtime":"GO","autoAck":true,"parallelism":1,` +
	`"source":{"inputSpecs":{"persistent://public/default/in":{}},"cleanupSubscription":true},` +
	`"sink":{"topic":"persistent://public/default/out","forwardSourceMessageProperty":true},` +
	`"resources":{"cpu":1.0,"ram":"1073741824","disk":"10737418240"},"componentType":"FUNCTION"}`

func TestParseArgsWorkerConfig(t *testing.T) {
	t.Parallel()
	// As the worker writes it: userConfig both flat and inside functionDetails.
	details := strings.Replace(realDetails, `"runtime":"GO"`, `"userConfig":"{\"greeting\":\"hi\",\"n\":3}","runtime":"GO"`, 1)
	cfg, err := ParseArgs(Args{ConfJSON: workerConf(t, details, nil)})
	require.NoError(t, err)
	assert.Equal(t, "pulsar://127.0.0.1:6650", cfg.ServiceURL)
	assert.Equal(t, 40005, cfg.Port)
	assert.Equal(t, 41109, cfg.MetricsPort)
	assert.Equal(t, []Input{{Topic: "persistent://public/default/in"}}, cfg.Inputs)
	assert.Equal(t, "public/default/echo", cfg.Subscription)
	assert.Equal(t, pulsar.Shared, cfg.SubscriptionType)
	assert.Equal(t, pulsar.SubscriptionPositionLatest, cfg.Position)
	assert.Equal(t, time.Minute, cfg.NackDelay)
	assert.True(t, cfg.ForwardProperties)
	assert.Equal(t, 1, cfg.Concurrency)
	assert.Equal(t, pb.ProcessingGuarantees_ATLEAST_ONCE, cfg.Guarantee)
	assert.Empty(t, cfg.Warnings)

	info := cfg.Info
	assert.Equal(t, "public/default/echo", info.FQFN())
	assert.Equal(t, 2, info.InstanceID)
	assert.Equal(t, "f-id", info.FuncID)
	assert.Equal(t, "f-ver", info.FuncVersion)
	assert.Equal(t, "standalone", info.ClusterName)
	assert.Equal(t, []string{"persistent://public/default/in"}, info.InputTopics)
	assert.Equal(t, "persistent://public/default/out", info.OutputTopic)
	assert.Equal(t, map[string]any{"greeting": "hi", "n": 3.0}, info.UserConfig)
	assert.Equal(t, 40005, info.Port)
	assert.Equal(t, 41109, info.MetricsPort)
	assert.False(t, info.ManualAck)
}

func TestParseArgsFunctionDetails(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		details string
		check   func(t *testing.T, c *Config)
	}{
		{
			name: "unknown fields and enum names are ignored",
			details: `{"tenant":"t","namespace":"n","name":"f","autoAck":true,"futureField":{"x":1},"componentType":"SOMETHING_NEW",` +
				`"source":{"inputSpecs":{"a":{"cryptoSpecNew":1}},"subscriptionType":"FAILOVER"},"sink":{"topic":"o"}}`,
			check: func(t *testing.T, c *Config) {
				assert.Equal(t, pulsar.Failover, c.SubscriptionType)
				assert.Equal(t, "t/n/f", c.Info.FQFN())
				assert.False(t, c.ForwardProperties, "forwardSourceMessageProperty omitted means false")
			},
		},
		{
			name: "functionDetails wins over the flat keys",
			details: `{"tenant":"t2","namespace":"n2","name":"f2","autoAck":true,"processingGuarantees":"ATMOST_ONCE",` +
				`"source":{"inputSpecs":{"x":{"receiverQueueSize":{"value":10}},"p.*":{"isRegexPattern":true,"consumerProperties":{"k":"v"}}},` +
				`"subscriptionName":"sub","subscriptionPosition":"EARLIEST","negativeAckRedeliveryDelayMs":"1500","timeoutMs":"2000"},` +
				`"sink":{"topic":"o2"},"logTopic":"logs","userConfig":"{\"a\":1}"}`,
			check: func(t *testing.T, c *Config) {
				assert.Equal(t, "t2/n2/f2", c.Info.FQFN())
				assert.Equal(t, pb.ProcessingGuarantees_ATMOST_ONCE, c.Guarantee)
				assert.Equal(t, []Input{
					{Topic: "p.*", Regex: true, Properties: map[string]string{"k": "v"}},
					{Topic: "x", ReceiverQueueSize: 10},
				}, c.Inputs)
				assert.Equal(t, "sub", c.Subscription)
				assert.Equal(t, pulsar.SubscriptionPositionEarliest, c.Position)
				assert.Equal(t, 1500*time.Millisecond, c.NackDelay)
				assert.Equal(t, 2*time.Second, c.Timeout)
				assert.Equal(t, "o2", c.Info.OutputTopic)
				assert.Equal(t, "logs", c.Info.LogTopic)
				assert.Equal(t, map[string]any{"a": 1.0}, c.Info.UserConfig)
			},
		},
		{
			name:    "retainKeyOrdering makes Key_Shared, MANUAL sets ManualAck",
			details: `{"tenant":"t","namespace":"n","name":"f","processingGuarantees":"MANUAL","retainKeyOrdering":true,"source":{"inputSpecs":{"a":{}}}}`,
			check: func(t *testing.T, c *Config) {
				assert.Equal(t, pulsar.KeyShared, c.SubscriptionType)
				assert.True(t, c.Info.ManualAck)
			},
		},
		{
			name: "producer spec and retries from retryDetails",
			details: `{"tenant":"t","namespace":"n","name":"f","autoAck":true,"source":{"inputSpecs":{"a":{}}},` +
				`"retryDetails":{"maxMessageRetries":3,"deadLetterTopic":"dlq"},` +
				`"sink":{"topic":"o","producerSpec":{"maxPendingMessages":5,"compressionType":"ZSTD","batchingSpec":{"enabled":true,"batchingMaxPublishDelayMs":7}}}}`,
			check: func(t *testing.T, c *Config) {
				assert.Equal(t, 3, c.MaxRetries)
				assert.Equal(t, "dlq", c.DeadLetterTopic)
				ps := c.Details.GetSink().GetProducerSpec()
				require.NotNil(t, ps)
				assert.Equal(t, pb.CompressionType_ZSTD, ps.CompressionType)
				assert.Equal(t, int32(7), ps.GetBatchingSpec().GetBatchingMaxPublishDelayMs())
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := ParseArgs(Args{ConfJSON: workerConf(t, tc.details, nil)})
			require.NoError(t, err)
			tc.check(t, cfg)
		})
	}
}

func TestParseArgsFlatFallback(t *testing.T) {
	t.Parallel()
	conf := workerConf(t, "", func(m map[string]any) {
		m["subscriptionType"] = 1
		m["subscriptionPosition"] = 1
		m["processingGuarantees"] = 3
		m["autoAck"] = false
		m["sourceInputSpecs"] = map[string]string{
			"persistent://public/default/in":    `{"receiverQueueSize":{"value":10}}`,
			"persistent://public/default/other": `{"isRegexPattern":true}`,
		}
		m["sourceSpecsTopic"] = "persistent://public/default/legacy"
		m["isRegexPatternSubscription"] = true
		m["timeoutMs"] = 500
		m["maxMessageRetries"] = 0
	})
	cfg, err := ParseArgs(Args{ConfJSON: conf})
	require.NoError(t, err)
	assert.Equal(t, []Input{
		{Topic: "persistent://public/default/in", ReceiverQueueSize: 10},
		{Topic: "persistent://public/default/legacy", Regex: true},
		{Topic: "persistent://public/default/other", Regex: true},
	}, cfg.Inputs)
	assert.Equal(t, pulsar.Failover, cfg.SubscriptionType)
	assert.Equal(t, pulsar.SubscriptionPositionEarliest, cfg.Position)
	assert.Equal(t, pb.ProcessingGuarantees_MANUAL, cfg.Guarantee)
	assert.True(t, cfg.Info.ManualAck)
	assert.True(t, cfg.ForwardProperties, "the worker's default")
	assert.Equal(t, 500*time.Millisecond, cfg.Timeout)
	assert.Equal(t, "persistent://public/default/out", cfg.Info.OutputTopic)
}

func TestParseArgsYAML(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "conf.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
pulsarServiceURL: pulsar://localhost:6650
port: 9093
metricsPort: 9094
instanceID: 1
tenant: public
nameSpace: default
name: yamlfn
autoAck: true
sourceSpecsTopic: in
sinkSpecsTopic: out
userConfig: '{"fnhost.concurrency": 4}'
expectedHealthCheckInterval: 5
killAfterIdleMs: 1000
`), 0o600))
	cfg, err := ParseArgs(Args{ConfPath: path})
	require.NoError(t, err)
	assert.Equal(t, "public/default/yamlfn", cfg.Info.FQFN())
	assert.Equal(t, 9093, cfg.Port)
	assert.Equal(t, []Input{{Topic: "in"}}, cfg.Inputs)
	assert.Equal(t, "out", cfg.Info.OutputTopic)
	assert.Equal(t, 4, cfg.Concurrency)
	assert.Equal(t, 5*time.Second, cfg.HealthCheckInterval)
	assert.Equal(t, time.Second, cfg.KillAfterIdle)
	assert.Equal(t, int32(5), cfg.Info.ExpectedHealthCheckInterval)
}

func TestParseArgsErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(m map[string]any)
		args *Args
		want string
	}{
		{name: "port not a number", edit: func(m map[string]any) { m["port"] = "abc" },
			want: `instance config: field "port": want a number, got "abc"`},
		{name: "port fraction", edit: func(m map[string]any) { m["port"] = 1.5 },
			want: `instance config: field "port": want an integer in range, got 1.5`},
		{name: "port out of range", edit: func(m map[string]any) { m["port"] = 70000 },
			want: `instance config: field "port": 70000 is not a port`},
		{name: "autoAck not a bool", edit: func(m map[string]any) { m["autoAck"] = "yes" },
			want: `instance config: field "autoAck": want true or false, got "yes"`},
		{name: "sourceInputSpecs not strings", edit: func(m map[string]any) { m["sourceInputSpecs"] = map[string]int{"a": 1} },
			want: `instance config: field "sourceInputSpecs": want an object of strings`},
		{name: "functionDetails malformed", edit: func(m map[string]any) { m["functionDetails"] = `{"tenant":` },
			want: `instance config: field "functionDetails"`},
		{name: "sourceInputSpecs value malformed", edit: func(m map[string]any) {
			m["functionDetails"] = ""
			m["sourceInputSpecs"] = map[string]string{"a": `{"receiverQueueSize":"big"}`}
		}, want: `instance config: field "sourceInputSpecs" topic "a"`},
		{name: "userConfig not an object", edit: func(m map[string]any) {
			m["functionDetails"] = ""
			m["userConfig"] = `[1]`
		}, want: `instance config: field "userConfig": want a JSON object`},
		{name: "flat guarantee out of range", edit: func(m map[string]any) {
			m["functionDetails"] = ""
			m["processingGuarantees"] = 9
		}, want: `instance config: field "processingGuarantees": unknown value 9`},
		{name: "no service URL", edit: func(m map[string]any) { m["pulsarServiceURL"] = "" },
			want: `instance config: field "pulsarServiceURL" is empty`},
		{name: "no input", edit: func(m map[string]any) {
			m["functionDetails"] = `{"tenant":"t","namespace":"n","name":"f","autoAck":true}`
		}, want: "has no input topic"},
		{name: "not JSON", args: &Args{ConfJSON: "nope"}, want: "instance config: want a JSON object"},
		{name: "both sources", args: &Args{ConfJSON: "{}", ConfPath: "x"}, want: "not both"},
		{name: "missing YAML file", args: &Args{ConfPath: "/nonexistent/conf.yaml"}, want: "instance config: open /nonexistent/conf.yaml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := Args{}
			if tc.args != nil {
				args = *tc.args
			} else {
				args.ConfJSON = workerConf(t, realDetails, tc.edit)
			}
			_, err := ParseArgs(args)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestParseArgsRefusals(t *testing.T) {
	t.Parallel()
	details := func(extra string) func(m map[string]any) {
		return func(m map[string]any) {
			m["functionDetails"] = `{"tenant":"t","namespace":"n","name":"f",` + extra + `}`
		}
	}
	userConfig := func(uc string, extra string) func(m map[string]any) {
		return func(m map[string]any) {
			details(`"autoAck":true,"userConfig":` + strconvQuote(uc) + `,"source":{"inputSpecs":{"a":{}}}` + extra)(m)
		}
	}
	tests := []struct {
		name string
		edit func(m map[string]any)
		want string
	}{
		{name: "effectively once", edit: details(`"autoAck":true,"processingGuarantees":"EFFECTIVELY_ONCE","source":{"inputSpecs":{"a":{}}}`),
			want: "EFFECTIVELY_ONCE is not supported"},
		{name: "autoAck false with at-least-once", edit: details(`"source":{"inputSpecs":{"a":{}}}`),
			want: "autoAck=false needs processingGuarantees MANUAL, not ATLEAST_ONCE"},
		{name: "autoAck false with at-most-once", edit: details(`"processingGuarantees":"ATMOST_ONCE","source":{"inputSpecs":{"a":{}}}`),
			want: "not ATMOST_ONCE"},
		{name: "input schema", edit: details(`"autoAck":true,"source":{"inputSpecs":{"a":{"schemaType":"avro"}}}`),
			want: `input "a": schema "avro" is not supported`},
		{name: "output schema", edit: details(`"autoAck":true,"source":{"inputSpecs":{"a":{}}},"sink":{"topic":"o","schemaType":"JSON"}`),
			want: `output: schema "JSON" is not supported`},
		{name: "input encryption", edit: details(`"autoAck":true,"source":{"inputSpecs":{"a":{"cryptoSpec":{"cryptoKeyReaderClassName":"x"}}}}`),
			want: "encryption (cryptoSpec) is not supported"},
		{name: "output encryption", edit: details(`"autoAck":true,"source":{"inputSpecs":{"a":{}}},"sink":{"topic":"o","producerSpec":{"cryptoSpec":{}}}`),
			want: "output encryption"},
		{name: "skipToLatest", edit: details(`"autoAck":true,"source":{"inputSpecs":{"a":{}},"skipToLatest":true}`),
			want: "skipToLatest is not supported"},
		{name: "auth plugin", edit: func(m map[string]any) {
			m["clientAuthenticationPlugin"] = "org.apache.pulsar.client.impl.auth.AuthenticationAthenz"
			m["clientAuthenticationParameters"] = "x"
		}, want: `field "clientAuthenticationPlugin": "org.apache.pulsar.client.impl.auth.AuthenticationAthenz" is not supported`},
		{name: "token without params", edit: func(m map[string]any) {
			m["clientAuthenticationPlugin"] = authToken
		}, want: `the token plugin needs`},
		{name: "retries not a number", edit: userConfig(`{"fnhost.maxMessageRetries":"many"}`, ""),
			want: `userConfig "fnhost.maxMessageRetries": want an integer ≥ 0, got many`},
		{name: "negative retries", edit: userConfig(`{"fnhost.maxMessageRetries":-1}`, ""),
			want: `userConfig "fnhost.maxMessageRetries"`},
		{name: "backoff not a duration", edit: userConfig(`{"fnhost.retryBackoff":"soon"}`, ""),
			want: `userConfig "fnhost.retryBackoff": want a positive Go duration`},
		{name: "dead letter topic without retries", edit: userConfig(`{"fnhost.deadLetterTopic":"dlq"}`, ""),
			want: "a dead-letter topic needs a retry bound"},
		{name: "dead letter topic not a string", edit: userConfig(`{"fnhost.maxMessageRetries":1,"fnhost.deadLetterTopic":5}`, ""),
			want: `userConfig "fnhost.deadLetterTopic": want a topic name`},
		{name: "retries with failover", edit: userConfig(`{"fnhost.maxMessageRetries":2}`, `,"retainOrdering":true`),
			want: "need a Shared or Key_Shared subscription"},
		{name: "concurrency with failover", edit: userConfig(`{"fnhost.concurrency":4}`, `,"retainOrdering":true`),
			want: "conflicts with retainOrdering"},
		{name: "concurrency zero", edit: userConfig(`{"fnhost.concurrency":0}`, ""),
			want: `userConfig "fnhost.concurrency": want an integer from 1 to 1024`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseArgs(Args{ConfJSON: workerConf(t, realDetails, tc.edit)})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

func TestParseArgsRetriesFromUserConfig(t *testing.T) {
	t.Parallel()
	conf := workerConf(t, `{"tenant":"t","namespace":"n","name":"f","autoAck":true,"source":{"inputSpecs":{"a":{}}},`+
		`"userConfig":"{\"fnhost.maxMessageRetries\":\"2\",\"fnhost.deadLetterTopic\":\"dlq\",\"fnhost.retryBackoff\":\"250ms\"}"}`, nil)
	cfg, err := ParseArgs(Args{ConfJSON: conf})
	require.NoError(t, err)
	assert.Equal(t, 2, cfg.MaxRetries)
	assert.Equal(t, "dlq", cfg.DeadLetterTopic)
	assert.Equal(t, 250*time.Millisecond, cfg.RetryBackoff)

	o := consumerOptions(cfg, cfg.Inputs[0])
	require.NotNil(t, o.DLQ)
	assert.Equal(t, uint32(3), o.DLQ.MaxDeliveries, "one delivery plus two retries")
	assert.Equal(t, "dlq", o.DLQ.DeadLetterTopic)
	require.NotNil(t, o.NackBackoffPolicy)
	assert.Equal(t, 250*time.Millisecond, o.NackBackoffPolicy.Next(0))
	assert.Equal(t, time.Second, o.NackBackoffPolicy.Next(2))
	assert.Equal(t, map[string]string{"application": "pulsar-function", "id": "t/n/f", "instance_id": "2"}, o.Properties)
}

func TestParseArgsWarnings(t *testing.T) {
	t.Parallel()
	conf := workerConf(t, `{"tenant":"t","namespace":"n","name":"f","autoAck":true,"secretsMap":"{\"a\":\"b\"}",`+
		`"source":{"inputSpecs":{"a":{"serdeClassName":"com.X"}}},"sink":{"topic":"o","producerSpec":{"useThreadLocalProducers":true}}}`, nil)
	cfg, err := ParseArgs(Args{ConfJSON: conf})
	require.NoError(t, err)
	assert.Len(t, cfg.Warnings, 3)
}

func TestSubscriptionType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		d    *pb.FunctionDetails
		want pulsar.SubscriptionType
	}{
		{"default shared", &pb.FunctionDetails{}, pulsar.Shared},
		{"explicit shared", &pb.FunctionDetails{Source: &pb.SourceSpec{SubscriptionType: pb.SubscriptionType_SHARED}}, pulsar.Shared},
		{"explicit failover", &pb.FunctionDetails{Source: &pb.SourceSpec{SubscriptionType: pb.SubscriptionType_FAILOVER}}, pulsar.Failover},
		{"explicit key shared", &pb.FunctionDetails{Source: &pb.SourceSpec{SubscriptionType: pb.SubscriptionType_KEY_SHARED}}, pulsar.KeyShared},
		{"retainOrdering", &pb.FunctionDetails{RetainOrdering: true}, pulsar.Failover},
		{"retainOrdering wins", &pb.FunctionDetails{RetainOrdering: true, RetainKeyOrdering: true}, pulsar.Failover},
		{"retainKeyOrdering overrides explicit failover", &pb.FunctionDetails{RetainKeyOrdering: true,
			Source: &pb.SourceSpec{SubscriptionType: pb.SubscriptionType_FAILOVER}}, pulsar.KeyShared},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, SubscriptionType(tc.d))
		})
	}
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, plugin, params string
		wantNil              bool
		wantErr              string
	}{
		{name: "none", wantNil: true},
		{name: "inline token", plugin: authToken, params: "token:abc"},
		{name: "token file", plugin: authToken, params: "file:///tmp/token"},
		{name: "bare token", plugin: authToken, params: "abc"},
		{name: "tls", plugin: authTLS, params: "tlsCertFile:/c.pem,tlsKeyFile:/k.pem"},
		{name: "tls json", plugin: authTLS, params: `{"tlsCertFile":"/c.pem","tlsKeyFile":"/k.pem"}`},
		{name: "tls incomplete", plugin: authTLS, params: "tlsCertFile:/c.pem", wantErr: "needs tlsCertFile and tlsKeyFile"},
		{name: "oauth2", plugin: authOAuth2, params: `{"issuerUrl":"https://issuer","audience":"a","privateKey":"file:///k.json"}`},
		{name: "oauth2 not json", plugin: authOAuth2, params: "issuerUrl=x", wantErr: "OAuth2 needs a JSON object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, err := authentication(tc.plugin, tc.params)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantNil, a == nil)
		})
	}
}
