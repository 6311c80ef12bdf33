package instance

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"google.golang.org/protobuf/encoding/protojson"
	"gopkg.in/yaml.v3"

	"github.com/fnhost/fnhost/functions/pf/internal/call"
	pb "github.com/fnhost/fnhost/functions/pf/internal/pfproto"
)

// userConfig keys fnhost reads for settings the worker refuses to carry for Go functions.
const (
	// KeyMaxMessageRetries is the number of retries of a failed input (an integer ≥ 0) before
	// it goes to the dead-letter topic.
	KeyMaxMessageRetries = "fnhost.maxMessageRetries"
	// KeyDeadLetterTopic is the dead-letter topic (default <input topic>-<subscription>-DLQ).
	KeyDeadLetterTopic = "fnhost.deadLetterTopic"
	// KeyRetryBackoff is the first redelivery delay of a failed input, a Go duration; each
	// further retry doubles it, up to maxRetryBackoff.
	KeyRetryBackoff = "fnhost.retryBackoff"
	// KeyConcurrency is how many inputs are processed at once (an integer ≥ 1, default 1).
	KeyConcurrency = "fnhost.concurrency"
)

// Pulsar's Java class names of the client authentication plugins the worker may pass.
const (
	authToken  = "org.apache.pulsar.client.impl.auth.AuthenticationToken"
	authTLS    = "org.apache.pulsar.client.impl.auth.AuthenticationTls"
	authOAuth2 = "org.apache.pulsar.client.impl.auth.oauth2.AuthenticationOAuth2"
)

const (
	defaultNackDelay = time.Minute // pulsar-client-go's and Java's default
	maxRetryBackoff  = 10 * time.Minute
	maxConcurrency   = 1024
)

// rawConfig is the worker's GoInstanceConfig document. The conf tag lists the accepted keys;
// the first is the worker's. Keys not listed are ignored: the worker may add some.
type rawConfig struct {
	PulsarServiceURL               string            `conf:"pulsarServiceURL"`
	StateStorageServiceURL         string            `conf:"stateStorageServiceUrl"`
	PulsarWebServiceURL            string            `conf:"pulsarWebServiceUrl"`
	InstanceID                     int               `conf:"instanceID"`
	FuncID                         string            `conf:"funcID"`
	FuncVersion                    string            `conf:"funcVersion"`
	MaxBufTuples                   int               `conf:"maxBufTuples"`
	Port                           int               `conf:"port"`
	ClusterName                    string            `conf:"clusterName"`
	KillAfterIdleMs                int64             `conf:"killAfterIdleMs"`
	ExpectedHealthCheckInterval    int32             `conf:"expectedHealthCheckInterval"`
	Tenant                         string            `conf:"tenant"`
	NameSpace                      string            `conf:"nameSpace"`
	Name                           string            `conf:"name"`
	ClassName                      string            `conf:"className"`
	LogTopic                       string            `conf:"logTopic"`
	ProcessingGuarantees           int32             `conf:"processingGuarantees"`
	SecretsMap                     string            `conf:"secretsMap"`
	UserConfig                     string            `conf:"userConfig"`
	ClientAuthenticationPlugin     string            `conf:"clientAuthenticationPlugin"`
	ClientAuthenticationParameters string            `conf:"clientAuthenticationParameters"`
	TLSTrustCertsFilePath          string            `conf:"tlsTrustCertsFilePath"`
	TLSHostnameVerificationEnable  bool              `conf:"tlsHostnameVerificationEnable"`
	TLSAllowInsecureConnection     bool              `conf:"tlsAllowInsecureConnection"`
	Runtime                        int32             `conf:"runtime"`
	AutoAck                        bool              `conf:"autoAck"`
	Parallelism                    int32             `conf:"parallelism"`
	SubscriptionType               int32             `conf:"subscriptionType"`
	TimeoutMs                      uint64            `conf:"timeoutMs"`
	SubscriptionName               string            `conf:"subscriptionName"`
	CleanupSubscription            bool              `conf:"cleanupSubscription"`
	SubscriptionPosition           int32             `conf:"subscriptionPosition"`
	SourceInputSpecs               map[string]string `conf:"sourceInputSpecs"`
	SourceSpecsTopic               string            `conf:"sourceSpecsTopic"`
	SourceSchemaType               string            `conf:"sourceSchemaType"`
	RegexPatternSubscription       bool              `conf:"regexPatternSubscription,isRegexPatternSubscription"`
	ReceiverQueueSize              int32             `conf:"receiverQueueSize"`
	SinkSpecsTopic                 string            `conf:"sinkSpecsTopic"`
	SinkSchemaType                 string            `conf:"sinkSchemaType"`
	CPU                            float64           `conf:"cpu"`
	RAM                            int64             `conf:"ram"`
	Disk                           int64             `conf:"disk"`
	MaxMessageRetries              int32             `conf:"maxMessageRetries"`
	DeadLetterTopic                string            `conf:"deadLetterTopic"`
	MetricsPort                    int               `conf:"metricsPort"`
	FunctionDetails                string            `conf:"functionDetails"`
}

// Config is the resolved configuration of one instance.
type Config struct {
	ServiceURL string
	// AuthPlugin and AuthParams are the worker's client authentication plugin (a Java class
	// name) and its parameters; empty for none.
	AuthPlugin            string
	AuthParams            string
	TLSTrustCertsFilePath string
	TLSAllowInsecure      bool
	TLSValidateHostname   bool

	// Port is the gRPC InstanceControl port, MetricsPort the Prometheus port (0: no server).
	Port        int
	MetricsPort int
	// HealthCheckInterval is the worker's health-check period; 0 disables the watchdog that
	// stops the instance after three periods without a check.
	HealthCheckInterval time.Duration
	// KillAfterIdle stops the instance after that long without an input; 0 never.
	KillAfterIdle time.Duration

	// Details is the function's FunctionDetails, from "functionDetails" or the flat keys.
	Details *pb.FunctionDetails
	Info    call.Info

	Guarantee        pb.ProcessingGuarantees
	Inputs           []Input
	Subscription     string
	SubscriptionType pulsar.SubscriptionType
	Position         pulsar.SubscriptionInitialPosition
	// NackDelay is the redelivery delay of a failed input (negativeAckRedeliveryDelayMs).
	NackDelay time.Duration
	// Timeout bounds one call of the function (timeoutMs); 0 for none.
	Timeout time.Duration
	// MaxRetries is how many redeliveries a failed input gets before it is dead-lettered;
	// -1 (the default) retries forever, as engine.Config says.
	MaxRetries      int
	DeadLetterTopic string
	// RetryBackoff > 0 makes redeliveries back off exponentially from it.
	RetryBackoff time.Duration
	// Concurrency is how many inputs are processed at once; inputs with the same key are
	// always processed in order.
	Concurrency int
	// ForwardProperties copies input properties onto outputs.
	ForwardProperties bool

	// Warnings name settings that have no effect on a Go instance; Run logs them.
	Warnings []string
}

// Input is one input topic (or topic pattern) to subscribe to.
type Input struct {
	Topic             string
	Regex             bool
	ReceiverQueueSize int
	Properties        map[string]string
}

// ParseArgs reads the configuration from the JSON document or the YAML file.
func ParseArgs(args Args) (*Config, error) {
	var fields map[string]json.RawMessage
	switch {
	case args.ConfJSON != "" && args.ConfPath != "":
		return nil, errors.New("instance config: give -instance-conf or -instance-conf-path, not both")
	case args.ConfJSON != "":
		if err := json.Unmarshal([]byte(args.ConfJSON), &fields); err != nil {
			return nil, fmt.Errorf("instance config: want a JSON object: %w", err)
		}
	case args.ConfPath != "":
		b, err := os.ReadFile(args.ConfPath)
		if err != nil {
			return nil, fmt.Errorf("instance config: %w", err)
		}
		if fields, err = yamlFields(b); err != nil {
			return nil, fmt.Errorf("instance config %s: %w", args.ConfPath, err)
		}
	default:
		return nil, errors.New("instance config: no -instance-conf or -instance-conf-path")
	}
	var raw rawConfig
	if err := decodeFields(fields, &raw); err != nil {
		return nil, err
	}
	return resolve(&raw)
}

// yamlFields turns a YAML mapping into the JSON fields the decoder reads, so both sources
// share one decoder and one set of error messages.
func yamlFields(b []byte) (map[string]json.RawMessage, error) {
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("want a YAML mapping: %w", err)
	}
	fields := make(map[string]json.RawMessage, len(m))
	for k, v := range m {
		j, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", k, err)
		}
		fields[k] = j
	}
	return fields, nil
}

func decodeFields(fields map[string]json.RawMessage, raw *rawConfig) error {
	v := reflect.ValueOf(raw).Elem()
	t := v.Type()
	for i := range t.NumField() {
		for key := range strings.SplitSeq(t.Field(i).Tag.Get("conf"), ",") {
			val, ok := fields[key]
			if !ok {
				continue
			}
			if err := json.Unmarshal(val, v.Field(i).Addr().Interface()); err != nil {
				return fieldError(key, t.Field(i).Type, val)
			}
		}
	}
	return nil
}

func fieldError(key string, t reflect.Type, val json.RawMessage) error {
	var want string
	switch t.Kind() {
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint64:
		want = "a number"
		if _, err := strconv.ParseFloat(string(val), 64); err == nil {
			want = "an integer in range"
		}
	case reflect.Float64:
		want = "a number"
	case reflect.Bool:
		want = "true or false"
	case reflect.String:
		want = "a string"
	case reflect.Map:
		want = "an object of strings"
	default:
		want = t.String()
	}
	got := string(val)
	if len(got) > 64 {
		got = got[:61] + "..."
	}
	return fmt.Errorf("instance config: field %q: want %s, got %s", key, want, got)
}

var unmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}

// details returns the FunctionDetails: parsed from "functionDetails" when present (it is the
// complete and typed source), otherwise built from the flat keys as older workers send them.
func details(raw *rawConfig) (*pb.FunctionDetails, error) {
	if raw.FunctionDetails != "" {
		d := &pb.FunctionDetails{}
		if err := unmarshal.Unmarshal([]byte(raw.FunctionDetails), d); err != nil {
			return nil, fmt.Errorf("instance config: field \"functionDetails\": %w", err)
		}
		return d, nil
	}
	for _, e := range []struct {
		key string
		v   int32
		ok  func(int32) bool
	}{
		{"processingGuarantees", raw.ProcessingGuarantees, func(v int32) bool { _, ok := pb.ProcessingGuarantees_name[v]; return ok }},
		{"subscriptionType", raw.SubscriptionType, func(v int32) bool { _, ok := pb.SubscriptionType_name[v]; return ok }},
		{"subscriptionPosition", raw.SubscriptionPosition, func(v int32) bool { _, ok := pb.SubscriptionPosition_name[v]; return ok }},
	} {
		if !e.ok(e.v) {
			return nil, fmt.Errorf("instance config: field %q: unknown value %d", e.key, e.v)
		}
	}
	d := &pb.FunctionDetails{
		Tenant:               raw.Tenant,
		Namespace:            raw.NameSpace,
		Name:                 raw.Name,
		ClassName:            raw.ClassName,
		LogTopic:             raw.LogTopic,
		ProcessingGuarantees: pb.ProcessingGuarantees(raw.ProcessingGuarantees),
		UserConfig:           raw.UserConfig,
		SecretsMap:           raw.SecretsMap,
		Runtime:              pb.FunctionDetails_Runtime(raw.Runtime),
		AutoAck:              raw.AutoAck,
		Parallelism:          raw.Parallelism,
		Source: &pb.SourceSpec{
			SubscriptionType:     pb.SubscriptionType(raw.SubscriptionType),
			TimeoutMs:            raw.TimeoutMs,
			SubscriptionName:     raw.SubscriptionName,
			CleanupSubscription:  raw.CleanupSubscription,
			SubscriptionPosition: pb.SubscriptionPosition(raw.SubscriptionPosition),
			InputSpecs:           map[string]*pb.ConsumerSpec{},
		},
		Sink: &pb.SinkSpec{
			Topic:      raw.SinkSpecsTopic,
			SchemaType: raw.SinkSchemaType,
			// The flat keys cannot say; the worker's default is true.
			ForwardSourceMessageProperty: true,
		},
		Resources: &pb.Resources{Cpu: raw.CPU, Ram: raw.RAM, Disk: raw.Disk},
		RetryDetails: &pb.RetryDetails{
			MaxMessageRetries: raw.MaxMessageRetries,
			DeadLetterTopic:   raw.DeadLetterTopic,
		},
	}
	if raw.SourceSpecsTopic != "" {
		cs := &pb.ConsumerSpec{SchemaType: raw.SourceSchemaType, IsRegexPattern: raw.RegexPatternSubscription}
		if raw.ReceiverQueueSize > 0 {
			cs.ReceiverQueueSize = &pb.ConsumerSpec_ReceiverQueueSize{Value: raw.ReceiverQueueSize}
		}
		d.Source.InputSpecs[raw.SourceSpecsTopic] = cs
	}
	for topic, spec := range raw.SourceInputSpecs {
		cs := &pb.ConsumerSpec{}
		if err := unmarshal.Unmarshal([]byte(spec), cs); err != nil {
			return nil, fmt.Errorf("instance config: field \"sourceInputSpecs\" topic %q: %w", topic, err)
		}
		d.Source.InputSpecs[topic] = cs
	}
	return d, nil
}

func resolve(raw *rawConfig) (*Config, error) {
	d, err := details(raw)
	if err != nil {
		return nil, err
	}
	if d.Source == nil {
		d.Source = &pb.SourceSpec{}
	}
	if d.Sink == nil {
		d.Sink = &pb.SinkSpec{}
	}
	c := &Config{
		ServiceURL:            raw.PulsarServiceURL,
		AuthPlugin:            raw.ClientAuthenticationPlugin,
		AuthParams:            raw.ClientAuthenticationParameters,
		TLSTrustCertsFilePath: raw.TLSTrustCertsFilePath,
		TLSAllowInsecure:      raw.TLSAllowInsecureConnection,
		TLSValidateHostname:   raw.TLSHostnameVerificationEnable,
		Port:                  raw.Port,
		MetricsPort:           raw.MetricsPort,
		HealthCheckInterval:   time.Duration(raw.ExpectedHealthCheckInterval) * time.Second,
		KillAfterIdle:         time.Duration(raw.KillAfterIdleMs) * time.Millisecond,
		Details:               d,
		Guarantee:             d.ProcessingGuarantees,
		ForwardProperties:     d.Sink.ForwardSourceMessageProperty,
		NackDelay:             defaultNackDelay,
		Timeout:               time.Duration(d.Source.TimeoutMs) * time.Millisecond,
		Concurrency:           1,
		MaxRetries:            -1,
	}
	for _, chk := range []struct {
		bad bool
		msg string
	}{
		{c.ServiceURL == "", `field "pulsarServiceURL" is empty`},
		{d.Tenant == "", `the function's tenant is empty ("tenant")`},
		{d.Namespace == "", `the function's namespace is empty ("nameSpace")`},
		{d.Name == "", `the function's name is empty ("name")`},
		{c.Port < 0 || c.Port > 65535, fmt.Sprintf(`field "port": %d is not a port`, c.Port)},
		{c.MetricsPort < 0 || c.MetricsPort > 65535, fmt.Sprintf(`field "metricsPort": %d is not a port`, c.MetricsPort)},
		{raw.KillAfterIdleMs < 0, `field "killAfterIdleMs" is negative`},
		{raw.ExpectedHealthCheckInterval < 0, `field "expectedHealthCheckInterval" is negative`},
	} {
		if chk.bad {
			return nil, errors.New("instance config: " + chk.msg)
		}
	}

	userConfig := map[string]any{}
	if s := strings.TrimSpace(d.UserConfig); s != "" && s != "null" {
		if err := json.Unmarshal([]byte(s), &userConfig); err != nil {
			return nil, fmt.Errorf("instance config: field \"userConfig\": want a JSON object: %w", err)
		}
		if userConfig == nil {
			userConfig = map[string]any{}
		}
	}
	if err := c.resolveInputs(d); err != nil {
		return nil, err
	}
	if err := c.resolveRetries(d, userConfig); err != nil {
		return nil, err
	}
	if err := c.refuseUnsupported(d); err != nil {
		return nil, err
	}
	if err := checkAuth(c.AuthPlugin, c.AuthParams); err != nil {
		return nil, err
	}

	c.Info = call.Info{
		Tenant:                      d.Tenant,
		Namespace:                   d.Namespace,
		Name:                        d.Name,
		InstanceID:                  raw.InstanceID,
		FuncID:                      raw.FuncID,
		FuncVersion:                 raw.FuncVersion,
		ClusterName:                 raw.ClusterName,
		OutputTopic:                 d.Sink.Topic,
		LogTopic:                    d.LogTopic,
		UserConfig:                  userConfig,
		Port:                        raw.Port,
		MetricsPort:                 raw.MetricsPort,
		ExpectedHealthCheckInterval: raw.ExpectedHealthCheckInterval,
		ManualAck:                   d.ProcessingGuarantees == pb.ProcessingGuarantees_MANUAL,
	}
	for _, in := range c.Inputs {
		c.Info.InputTopics = append(c.Info.InputTopics, in.Topic)
	}
	return c, nil
}

func (c *Config) resolveInputs(d *pb.FunctionDetails) error {
	src := d.Source
	for _, topic := range slices.Sorted(maps.Keys(src.InputSpecs)) {
		spec := src.InputSpecs[topic]
		if spec == nil {
			spec = &pb.ConsumerSpec{}
		}
		if err := checkSchema(fmt.Sprintf("input %q", topic), spec.SchemaType); err != nil {
			return err
		}
		if spec.CryptoSpec != nil {
			return fmt.Errorf("instance config: input %q: encryption (cryptoSpec) is not supported by the Go instance", topic)
		}
		if spec.MessagePayloadProcessorSpec != nil {
			return fmt.Errorf("instance config: input %q: a message payload processor is Java-only", topic)
		}
		if spec.SerdeClassName != "" {
			c.Warnings = append(c.Warnings, fmt.Sprintf("input %q: serdeClassName %q is Java-only; the function gets raw bytes", topic, spec.SerdeClassName))
		}
		in := Input{Topic: topic, Regex: spec.IsRegexPattern, Properties: spec.ConsumerProperties}
		if q := spec.ReceiverQueueSize; q != nil && q.Value > 0 {
			in.ReceiverQueueSize = int(q.Value)
		}
		c.Inputs = append(c.Inputs, in)
	}
	if len(c.Inputs) == 0 {
		return errors.New("instance config: the function has no input topic (sourceInputSpecs, functionDetails.source.inputSpecs)")
	}
	c.Subscription = src.SubscriptionName
	if c.Subscription == "" {
		c.Subscription = d.Tenant + "/" + d.Namespace + "/" + d.Name
	}
	c.SubscriptionType = SubscriptionType(d)
	c.Position = pulsar.SubscriptionPositionLatest
	if src.SubscriptionPosition == pb.SubscriptionPosition_EARLIEST || d.SubscriptionPosition == pb.SubscriptionPosition_EARLIEST {
		c.Position = pulsar.SubscriptionPositionEarliest
	}
	if src.NegativeAckRedeliveryDelayMs > 0 {
		c.NackDelay = time.Duration(src.NegativeAckRedeliveryDelayMs) * time.Millisecond
	}
	return nil
}

// SubscriptionType derives the subscription type the way the worker means it: retainOrdering
// needs a single active consumer (Failover), retainKeyOrdering per-key order (Key_Shared);
// otherwise the source's explicit type, Shared by default.
func SubscriptionType(d *pb.FunctionDetails) pulsar.SubscriptionType {
	switch {
	case d.RetainOrdering:
		return pulsar.Failover
	case d.RetainKeyOrdering:
		return pulsar.KeyShared
	}
	switch d.GetSource().GetSubscriptionType() {
	case pb.SubscriptionType_FAILOVER:
		return pulsar.Failover
	case pb.SubscriptionType_KEY_SHARED:
		return pulsar.KeyShared
	default:
		return pulsar.Shared
	}
}

func (c *Config) resolveRetries(d *pb.FunctionDetails, uc map[string]any) error {
	// FunctionDetails' proto3 field cannot tell 0 from unset: only a positive value counts.
	if rd := d.RetryDetails; rd != nil && rd.MaxMessageRetries > 0 {
		c.MaxRetries = int(rd.MaxMessageRetries)
		c.DeadLetterTopic = rd.DeadLetterTopic
	}
	if v, ok := uc[KeyMaxMessageRetries]; ok {
		n, err := userInt(v)
		if err != nil || n < 0 {
			return fmt.Errorf("instance config: userConfig %q: want an integer ≥ 0, got %v", KeyMaxMessageRetries, v)
		}
		c.MaxRetries = n
	}
	if v, ok := uc[KeyDeadLetterTopic]; ok {
		s, isString := v.(string)
		if !isString {
			return fmt.Errorf("instance config: userConfig %q: want a topic name, got %v", KeyDeadLetterTopic, v)
		}
		c.DeadLetterTopic = s
	}
	if v, ok := uc[KeyRetryBackoff]; ok {
		s, isString := v.(string)
		dur, err := time.ParseDuration(s)
		if !isString || err != nil || dur <= 0 {
			return fmt.Errorf("instance config: userConfig %q: want a positive Go duration such as \"500ms\", got %v", KeyRetryBackoff, v)
		}
		c.RetryBackoff = dur
	}
	if v, ok := uc[KeyConcurrency]; ok {
		n, err := userInt(v)
		if err != nil || n < 1 || n > maxConcurrency {
			return fmt.Errorf("instance config: userConfig %q: want an integer from 1 to %d, got %v", KeyConcurrency, maxConcurrency, v)
		}
		c.Concurrency = n
	}
	if c.DeadLetterTopic != "" && c.MaxRetries < 0 {
		return fmt.Errorf("instance config: a dead-letter topic needs a retry bound: set %q (or maxMessageRetries) ≥ 0", KeyMaxMessageRetries)
	}
	if c.MaxRetries >= 0 && c.SubscriptionType != pulsar.Shared && c.SubscriptionType != pulsar.KeyShared {
		return errors.New("instance config: retries with a dead-letter topic need a Shared or Key_Shared subscription " +
			"(the broker counts redeliveries only there); retainOrdering and FAILOVER make it Failover")
	}
	if c.Concurrency > 1 && c.SubscriptionType == pulsar.Failover {
		return fmt.Errorf("instance config: userConfig %q > 1 conflicts with retainOrdering / FAILOVER, which process inputs in order", KeyConcurrency)
	}
	return nil
}

// userInt reads an integer from a userConfig value: JSON numbers arrive as float64; a decimal
// string is accepted too, as pulsar-admin users often quote numbers.
func userInt(v any) (int, error) {
	switch x := v.(type) {
	case float64:
		if x != float64(int(x)) {
			return 0, fmt.Errorf("%v is not an integer", x)
		}
		return int(x), nil
	case string:
		return strconv.Atoi(x)
	default:
		return 0, fmt.Errorf("%T is not a number", v)
	}
}

func (c *Config) refuseUnsupported(d *pb.FunctionDetails) error {
	switch d.ProcessingGuarantees {
	case pb.ProcessingGuarantees_EFFECTIVELY_ONCE:
		return errors.New("instance config: processingGuarantees EFFECTIVELY_ONCE is not supported by the Go instance " +
			"(the worker refuses it for Go too); use ATLEAST_ONCE")
	case pb.ProcessingGuarantees_ATLEAST_ONCE, pb.ProcessingGuarantees_ATMOST_ONCE:
		if !d.AutoAck {
			return fmt.Errorf("instance config: autoAck=false needs processingGuarantees MANUAL, not %s "+
				"(PIP-166: with MANUAL the function acks through FunctionContext.Ack)", d.ProcessingGuarantees)
		}
	}
	if d.Source.SkipToLatest {
		return errors.New("instance config: skipToLatest is not supported by the Go instance")
	}
	if err := checkSchema("output", d.Sink.SchemaType); err != nil {
		return err
	}
	if ps := d.Sink.ProducerSpec; ps != nil {
		if ps.CryptoSpec != nil {
			return errors.New("instance config: output encryption (producerSpec.cryptoSpec) is not supported by the Go instance")
		}
		if ps.MaxPendingMessagesAcrossPartitions > 0 {
			c.Warnings = append(c.Warnings, "producerSpec.maxPendingMessagesAcrossPartitions has no Go client equivalent; maxPendingMessages applies per partition")
		}
		if ps.UseThreadLocalProducers {
			c.Warnings = append(c.Warnings, "producerSpec.useThreadLocalProducers is Java-only")
		}
	}
	if d.Sink.SerDeClassName != "" {
		c.Warnings = append(c.Warnings, fmt.Sprintf("output serDeClassName %q is Java-only; the function returns raw bytes", d.Sink.SerDeClassName))
	}
	if s := strings.TrimSpace(d.SecretsMap); s != "" && s != "{}" && s != "null" {
		c.Warnings = append(c.Warnings, "secrets are configured but Go functions cannot read them (no secrets API)")
	}
	return nil
}

// checkSchema refuses a schema: the Go instance reads and writes raw bytes.
func checkSchema(what, schema string) error {
	switch strings.ToUpper(schema) {
	case "", "BYTES", "NONE":
		return nil
	}
	return fmt.Errorf("instance config: %s: schema %q is not supported; Go functions read and write raw bytes", what, schema)
}

// checkAuth refuses an authentication plugin the instance cannot use, before any connection.
func checkAuth(plugin, params string) error {
	switch plugin {
	case "":
		return nil
	case authToken:
		if params == "" {
			return errors.New(`instance config: field "clientAuthenticationParameters": the token plugin needs "token:<jwt>" or "file://<path>"`)
		}
		return nil
	case authTLS:
		if _, _, err := tlsAuthFiles(params); err != nil {
			return fmt.Errorf("instance config: field \"clientAuthenticationParameters\": %w", err)
		}
		return nil
	case authOAuth2:
		var m map[string]string
		if err := json.Unmarshal([]byte(params), &m); err != nil {
			return fmt.Errorf("instance config: field \"clientAuthenticationParameters\": OAuth2 needs a JSON object of strings: %w", err)
		}
		return nil
	default:
		return fmt.Errorf("instance config: field \"clientAuthenticationPlugin\": %q is not supported by the Go instance (token, TLS and OAuth2 are)", plugin)
	}
}

// tlsAuthFiles reads AuthenticationTls parameters: "tlsCertFile:<path>,tlsKeyFile:<path>" or
// the JSON form {"tlsCertFile": ..., "tlsKeyFile": ...}.
func tlsAuthFiles(params string) (cert, key string, err error) {
	m := map[string]string{}
	if strings.HasPrefix(strings.TrimSpace(params), "{") {
		if err := json.Unmarshal([]byte(params), &m); err != nil {
			return "", "", fmt.Errorf("TLS authentication parameters: %w", err)
		}
	} else {
		for kv := range strings.SplitSeq(params, ",") {
			k, v, _ := strings.Cut(kv, ":")
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	cert, key = strings.TrimPrefix(m["tlsCertFile"], "file://"), strings.TrimPrefix(m["tlsKeyFile"], "file://")
	if cert == "" || key == "" {
		return "", "", errors.New("TLS authentication needs tlsCertFile and tlsKeyFile")
	}
	return cert, key, nil
}
