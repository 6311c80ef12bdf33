// Package manifest loads function manifests: pulsar-admin FunctionConfig files (YAML), the same
// files `pulsar-admin functions create --function-config-file` reads, with pulsar-client-go's
// pulsaradmin utils.FunctionConfig as the schema.
//
// Decoding is strict. An unknown field, a value of the wrong type, a missing input, or a
// setting fnhost's host runtime cannot honour is an error that names the file, the line, the
// field and why; nothing is silently ignored. Both the host runtime and the trigger read
// manifests through this package.
package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"gopkg.in/yaml.v3"
)

// Guarantee is a processing guarantee.
type Guarantee string

// The processing guarantees of Pulsar Functions.
const (
	AtLeastOnce     Guarantee = "ATLEAST_ONCE"
	AtMostOnce      Guarantee = "ATMOST_ONCE"
	EffectivelyOnce Guarantee = "EFFECTIVELY_ONCE"
	Manual          Guarantee = "MANUAL"
)

// SubscriptionType is how a function's instances share its input subscription.
type SubscriptionType string

// Subscription types, derived from retainOrdering and retainKeyOrdering as the worker does.
const (
	Shared    SubscriptionType = "Shared"
	Failover  SubscriptionType = "Failover"
	KeyShared SubscriptionType = "Key_Shared"
)

// User-config keys with which a Go function sets retries and dead-lettering: the functions
// worker refuses maxMessageRetries and deadLetterTopic for Go functions, so fnhost's SDK (and
// the host runtime, for symmetry) also read them here.
const (
	KeyMaxMessageRetries = "fnhost.maxMessageRetries"
	KeyDeadLetterTopic   = "fnhost.deadLetterTopic"
	KeyRetryBackoff      = "fnhost.retryBackoff"
)

// Function is one validated manifest.
type Function struct {
	// Path is the file the manifest was read from.
	Path string
	// Config is the manifest as pulsar-admin reads it.
	Config utils.FunctionConfig

	Tenant, Namespace, Name string
	// Inputs are the fully qualified input topics; Pattern is a topics regex (topicsPattern or a
	// regexPattern input spec), empty when none.
	Inputs  []string
	Pattern string
	// Output is the fully qualified output topic; empty when the function has none.
	Output string
	// Source is the directory of the function's main package when the manifest's go field
	// names a directory (the convention of this repository: go: functions/<name>), resolved
	// against the current directory; Binary is the executable when it names a file.
	Source, Binary string

	Subscription     string
	SubscriptionType SubscriptionType
	// Earliest is true when a new subscription starts at the earliest message.
	Earliest    bool
	Guarantee   Guarantee
	Parallelism int
	// Timeout is the invocation deadline (timeoutMs); 0 means none.
	Timeout time.Duration
	// MaxRetries is the number of redeliveries before DeadLetterTopic; -1 means retry forever.
	// With retries and no deadLetterTopic, DeadLetterTopic is <first input>-<name>-DLQ.
	MaxRetries      int
	DeadLetterTopic string
	RetryBackoff    time.Duration
	// fields are the top-level keys the manifest sets.
	fields map[string]bool

	// ForwardProperties copies the input's properties to its outputs
	// (forwardSourceMessageProperty; true unless the manifest says false, as in the worker).
	ForwardProperties bool
	UserConfig        map[string]any
}

// FQFN is tenant/namespace/name.
func (f *Function) FQFN() string { return f.Tenant + "/" + f.Namespace + "/" + f.Name }

// ConfigHas reports whether the manifest sets the top-level field (a FunctionConfig YAML
// key), to tell an explicit false or zero from an absent one.
func (f *Function) ConfigHas(field string) bool { return f.fields[field] }

// Error is a problem with one manifest.
type Error struct {
	Path  string
	Line  int    // 0 when unknown
	Field string // the YAML field path, e.g. inputSpecs.x.regexPattern; "" for the whole file
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Path)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Field != "" {
		fmt.Fprintf(&b, "field %q: ", e.Field)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// LoadDir loads every *.yaml and *.yml file in dir, sorted by name. It reports every problem of
// every file, joined, and also duplicate function names.
func LoadDir(dir string) ([]*Function, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading manifests: %w", err)
	}
	var fns []*Function
	var errs []error
	seen := map[string]string{}
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		f, err := Load(filepath.Join(dir, e.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, ok := seen[f.FQFN()]; ok {
			errs = append(errs, &Error{Path: f.Path, Field: "name", Msg: fmt.Sprintf("function %s is also defined in %s", f.FQFN(), prev)})
			continue
		}
		seen[f.FQFN()] = f.Path
		fns = append(fns, f)
	}
	if len(fns) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("%s: no manifests (*.yaml)", dir))
	}
	return fns, errors.Join(errs...)
}

// Load reads and validates one manifest file.
func Load(path string) (*Function, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	return Parse(path, b)
}

// Parse validates the manifest b; path is used in errors and to resolve the go field.
func Parse(path string, b []byte) (*Function, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, decodeError(path, err, nil)
	}
	if len(root.Content) == 0 {
		return nil, &Error{Path: path, Msg: "empty manifest"}
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var cfg utils.FunctionConfig
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, decodeError(path, err, root.Content[0])
	}
	v := validator{path: path, root: root.Content[0]}
	f := v.function(cfg)
	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	return f, nil
}

var (
	yamlLine      = regexp.MustCompile(`^line (\d+): (.*)$`)
	unknownField  = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
	cannotDecode  = regexp.MustCompile(`^cannot unmarshal (!!\w+) ` + "`" + `?([^` + "`" + `]*?)` + "`" + `? into (\S+)$`)
	yamlErrPrefix = "yaml: "
)

// decodeError turns yaml.v3's errors into Errors that name the file, line and field; doc, when
// not nil, is the parsed document, to find the field at a line.
func decodeError(path string, err error, doc *yaml.Node) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		msg := strings.TrimPrefix(err.Error(), yamlErrPrefix)
		line := 0
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		return &Error{Path: path, Line: line, Msg: "not valid YAML: " + msg}
	}
	var errs []error
	for _, e := range te.Errors {
		line := 0
		if m := yamlLine.FindStringSubmatch(e); m != nil {
			line, _ = strconv.Atoi(m[1])
			e = m[2]
		}
		switch m := unknownField.FindStringSubmatch(e); {
		case m != nil:
			errs = append(errs, &Error{Path: path, Line: line, Field: m[1],
				Msg: fmt.Sprintf("unknown field (not part of pulsar-admin's %s)", shortType(m[2]))})
		default:
			if m := cannotDecode.FindStringSubmatch(e); m != nil {
				errs = append(errs, &Error{Path: path, Line: line, Field: fieldAt(doc, line, ""),
					Msg: fmt.Sprintf("wrong type: %s %q where %s is expected", strings.TrimPrefix(m[1], "!!"), m[2], m[3])})
				continue
			}
			errs = append(errs, &Error{Path: path, Line: line, Msg: e})
		}
	}
	return errors.Join(errs...)
}

// fieldAt returns the dotted path of the field whose value starts at line, or "".
func fieldAt(n *yaml.Node, line int, prefix string) string {
	if n == nil {
		return ""
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			p := k.Value
			if prefix != "" {
				p = prefix + "." + p
			}
			if val.Line == line && val.Kind == yaml.ScalarNode {
				return p
			}
			if f := fieldAt(val, line, p); f != "" {
				return f
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s.%d", prefix, i)
			if c.Line == line && c.Kind == yaml.ScalarNode {
				return p
			}
			if f := fieldAt(c, line, p); f != "" {
				return f
			}
		}
	}
	return ""
}

func shortType(t string) string {
	if i := strings.LastIndex(t, "."); i >= 0 {
		return t[i+1:]
	}
	return t
}

// validator collects the problems of one manifest.
type validator struct {
	path string
	root *yaml.Node
	errs []error
}

// fail records a problem with field (a dotted path into the YAML, used to find its line).
func (v *validator) fail(field, format string, args ...any) {
	v.errs = append(v.errs, &Error{Path: v.path, Line: v.line(field), Field: field, Msg: fmt.Sprintf(format, args...)})
}

// line returns the line of the dotted field path in the document, or 0.
func (v *validator) line(field string) int {
	n := v.root
	line := 0
	for _, part := range strings.Split(field, ".") {
		if n == nil || n.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == part {
				line = n.Content[i].Line
				next = n.Content[i+1]
				break
			}
		}
		n = next
	}
	return line
}

func (v *validator) has(field string) bool { return v.line(field) > 0 }

func (v *validator) function(c utils.FunctionConfig) *Function {
	f := &Function{Path: v.path, Config: c, Tenant: c.Tenant, Namespace: c.Namespace, Name: c.Name, fields: map[string]bool{}}
	for i := 0; v.root.Kind == yaml.MappingNode && i+1 < len(v.root.Content); i += 2 {
		f.fields[v.root.Content[i].Value] = true
	}
	if f.Tenant == "" {
		f.Tenant = "public"
	}
	if f.Namespace == "" {
		f.Namespace = "default"
	}
	if c.Name == "" {
		v.fail("name", "missing: every function needs a name")
	} else if strings.ContainsAny(c.Name, "/ ") {
		v.fail("name", "%q: a name cannot contain '/' or spaces", c.Name)
	}

	v.refuseUnsupported(c)
	v.runtime(c, f)
	if c.Output != "" {
		f.Output = v.topic("output", c.Output, f)
	}
	v.inputs(c, f)
	v.subscription(c, f)
	v.guarantees(c, f)
	v.limits(c, f)
	v.retries(c, f)
	f.ForwardProperties = !v.has("forwardSourceMessageProperty") || c.ForwardSourceMessageProperty
	f.UserConfig = c.UserConfig
	if f.UserConfig == nil {
		f.UserConfig = map[string]any{}
	}
	return f
}

// refuseUnsupported rejects the FunctionConfig fields that describe Java or Python functions,
// schemas, windows and Kubernetes settings, which a Go binary on raw bytes cannot honour.
func (v *validator) refuseUnsupported(c utils.FunctionConfig) {
	refused := []struct{ field, why string }{
		{"jar", "Java functions are not run by fnhost; deploy them with pulsar-admin"},
		{"py", "Python functions are not run by fnhost; deploy them with pulsar-admin"},
		{"className", "a Go function has no class; remove it"},
		{"windowConfig", "window functions are a Java SDK feature"},
		{"customSerdeInputs", "Go functions read raw bytes; serdes are a Java/Python feature"},
		{"customSchemaInputs", "Go functions read raw bytes; schemas are not supported"},
		{"customSchemaOutputs", "Go functions write raw bytes; schemas are not supported"},
		{"outputSerdeClassName", "Go functions write raw bytes; serdes are a Java/Python feature"},
		{"outputSchemaType", "Go functions write raw bytes; schemas are not supported"},
		{"outputTypeClassName", "a Java setting"},
		{"inputTypeClassName", "a Java setting"},
		{"secrets", "secrets providers are not supported yet; use userConfig or the environment"},
		{"customRuntimeOptions", "a Kubernetes runtime setting"},
		{"runtimeFlags", "flags for the Java or Python runtime"},
		{"functionType", "built-in function packages are not supported"},
		{"exposePulsarAdminClientEnabled", "the Go SDK has no admin client"},
		{"maxPendingAsyncRequests", "an async Java function setting"},
		{"skipToLatest", "not supported by the host runtime yet"},
	}
	for _, r := range refused {
		if v.has(r.field) {
			v.fail(r.field, "not supported: %s", r.why)
		}
	}
	for topic, spec := range c.InputSpecs {
		field := "inputSpecs." + topic
		if spec.SchemaType != "" || spec.SerdeClassName != "" || len(spec.SchemaProperties) > 0 {
			v.fail(field, "schemas and serdes are not supported: Go functions read raw bytes")
		}
		if spec.CryptoConfig != nil {
			v.fail(field+".cryptoConfig", "not supported: end-to-end encryption is not implemented")
		}
	}
	if pc := c.ProducerConfig; pc != nil {
		if pc.CryptoConfig != nil {
			v.fail("producerConfig.cryptoConfig", "not supported: end-to-end encryption is not implemented")
		}
		if pc.UseThreadLocalProducers {
			v.fail("producerConfig.useThreadLocalProducers", "a Java runtime setting")
		}
		switch strings.ToUpper(pc.CompressionType) {
		case "", "NONE", "LZ4", "ZLIB", "ZSTD":
		case "SNAPPY":
			v.fail("producerConfig.compressionType", "SNAPPY is not supported by the Go client; use LZ4, ZLIB or ZSTD")
		default:
			v.fail("producerConfig.compressionType", "%q: want NONE, LZ4, ZLIB or ZSTD", pc.CompressionType)
		}
		switch pc.BatchBuilder {
		case "", "DEFAULT", "KEY_BASED":
		default:
			v.fail("producerConfig.batchBuilder", "%q: want DEFAULT or KEY_BASED", pc.BatchBuilder)
		}
	}
	switch c.BatchBuilder {
	case "", "DEFAULT", "KEY_BASED":
	default:
		v.fail("batchBuilder", "%q: want DEFAULT or KEY_BASED", c.BatchBuilder)
	}
}

func (v *validator) runtime(c utils.FunctionConfig, f *Function) {
	switch strings.ToUpper(c.Runtime) {
	case "", "GO":
	default:
		v.fail("runtime", "%q: fnhost runs Go functions only (runtime: GO)", c.Runtime)
	}
	if c.Go == nil || *c.Go == "" {
		v.fail("go", "missing: name the function's source directory (go: functions/<name>) or its binary")
		return
	}
	p := resolve(v.path, *c.Go)
	st, err := os.Stat(p)
	switch {
	case err != nil:
		v.fail("go", "%q: %v", p, errors.Unwrap(err))
	case st.IsDir():
		f.Source = p
	case st.Mode()&0o111 == 0:
		v.fail("go", "%q is not executable", p)
	default:
		f.Binary = p
	}
}

// resolve finds a relative go path against the current directory, then against the
// manifest's directory and each of its parents, so that go: functions/echo in
// manifests/functions/echo.yaml means the repository's functions/echo wherever fnhost runs.
func resolve(manifestPath, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	if _, err := os.Stat(p); err == nil {
		return p
	}
	dir, err := filepath.Abs(filepath.Dir(manifestPath))
	if err != nil {
		return p
	}
	for {
		c := filepath.Join(dir, p)
		if _, err := os.Stat(c); err == nil {
			return c
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return p
		}
		dir = parent
	}
}

func (v *validator) inputs(c utils.FunctionConfig, f *Function) {
	seen := map[string]bool{}
	add := func(field, t string) {
		full := v.topic(field, t, f)
		if full == "" {
			return
		}
		if seen[full] {
			v.fail(field, "input topic %s is listed twice", full)
			return
		}
		seen[full] = true
		f.Inputs = append(f.Inputs, full)
	}
	for i, t := range c.Inputs {
		add(fmt.Sprintf("inputs.%d", i), t)
	}
	topics := make([]string, 0, len(c.InputSpecs))
	for t := range c.InputSpecs {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	for _, t := range topics {
		if c.InputSpecs[t].RegexPattern {
			v.pattern("inputSpecs."+t, t, f)
			continue
		}
		add("inputSpecs."+t, t)
	}
	if c.TopicsPattern != nil && *c.TopicsPattern != "" {
		v.pattern("topicsPattern", *c.TopicsPattern, f)
	}
	if len(f.Inputs) == 0 && f.Pattern == "" {
		v.fail("inputs", "missing: a function needs at least one input (inputs, inputSpecs or topicsPattern)")
	}
	if f.Output != "" && seen[f.Output] {
		v.fail("output", "%s is also an input: the function would consume its own output", f.Output)
	}
}

func (v *validator) pattern(field, p string, f *Function) {
	if f.Pattern != "" {
		v.fail(field, "only one topics pattern is supported (already %q)", f.Pattern)
		return
	}
	full := v.topic(field, p, f)
	if full == "" {
		return
	}
	if _, err := regexp.Compile(full); err != nil {
		v.fail(field, "%q is not a valid regular expression: %v", p, err)
		return
	}
	f.Pattern = full
}

// topic returns the fully qualified form of t (persistent://tenant/namespace/topic), as
// Pulsar expands short names, or "" after recording why t is not a topic name.
func (v *validator) topic(field, t string, f *Function) string {
	if strings.TrimSpace(t) != t || t == "" {
		v.fail(field, "%q is not a topic name", t)
		return ""
	}
	if strings.Contains(t, "://") {
		scheme, rest, _ := strings.Cut(t, "://")
		if scheme != "persistent" && scheme != "non-persistent" {
			v.fail(field, "%q: the topic domain must be persistent or non-persistent", t)
			return ""
		}
		if strings.Count(rest, "/") != 2 {
			v.fail(field, "%q: want domain://tenant/namespace/topic", t)
			return ""
		}
		return t
	}
	switch strings.Count(t, "/") {
	case 0:
		return "persistent://public/default/" + t
	case 2:
		return "persistent://" + t
	default:
		v.fail(field, "%q: want topic, tenant/namespace/topic or persistent://tenant/namespace/topic", t)
		return ""
	}
}

func (v *validator) subscription(c utils.FunctionConfig, f *Function) {
	f.Subscription = c.SubName
	if f.Subscription == "" {
		f.Subscription = f.FQFN()
	}
	switch {
	case c.RetainOrdering && c.RetainKeyOrdering:
		v.fail("retainKeyOrdering", "retainOrdering and retainKeyOrdering cannot both be true")
	case c.RetainOrdering:
		f.SubscriptionType = Failover
	case c.RetainKeyOrdering:
		f.SubscriptionType = KeyShared
	default:
		f.SubscriptionType = Shared
	}
	switch strings.ToLower(c.SubscriptionPosition) {
	case "", "latest":
	case "earliest":
		f.Earliest = true
	default:
		v.fail("subscriptionPosition", "%q: want Latest or Earliest", c.SubscriptionPosition)
	}
}

func (v *validator) guarantees(c utils.FunctionConfig, f *Function) {
	g := Guarantee(strings.ToUpper(c.ProcessingGuarantees))
	switch g {
	case "":
		g = AtLeastOnce
	case AtLeastOnce, AtMostOnce, Manual:
	case EffectivelyOnce:
		// Effectively-once needs ordered, single-consumer processing so that sequence ids
		// derived from the input deduplicate on the broker.
		if c.RetainKeyOrdering {
			v.fail("processingGuarantees", "EFFECTIVELY_ONCE needs a Failover subscription; it cannot be combined with retainKeyOrdering")
		}
		f.SubscriptionType = Failover
	default:
		v.fail("processingGuarantees", "%q: want ATLEAST_ONCE, ATMOST_ONCE, EFFECTIVELY_ONCE or MANUAL", c.ProcessingGuarantees)
	}
	f.Guarantee = g
	// autoAck false is only meaningful with MANUAL; the worker refuses it otherwise too.
	if v.has("autoAck") && !c.AutoAck && g != Manual {
		v.fail("autoAck", "false needs processingGuarantees MANUAL (the function then acks with FunctionContext.Ack)")
	}
}

func (v *validator) limits(c utils.FunctionConfig, f *Function) {
	switch {
	case c.Parallelism < 0:
		v.fail("parallelism", "%d: must be at least 1", c.Parallelism)
	case c.Parallelism == 0:
		f.Parallelism = 1
	default:
		f.Parallelism = c.Parallelism
	}
	if c.TimeoutMs != nil {
		if *c.TimeoutMs <= 0 {
			v.fail("timeoutMs", "%d: must be a positive number of milliseconds", *c.TimeoutMs)
		} else {
			f.Timeout = time.Duration(*c.TimeoutMs) * time.Millisecond
		}
	}
	if r := c.Resources; r != nil && (r.CPU < 0 || r.RAM < 0 || r.Disk < 0) {
		v.fail("resources", "cpu, ram and disk cannot be negative")
	}
}

func (v *validator) retries(c utils.FunctionConfig, f *Function) {
	f.MaxRetries = -1
	f.DeadLetterTopic = c.DeadLetterTopic
	f.RetryBackoff = time.Second
	if c.MaxMessageRetries != nil {
		if *c.MaxMessageRetries < 0 {
			v.fail("maxMessageRetries", "%d: cannot be negative", *c.MaxMessageRetries)
		}
		f.MaxRetries = *c.MaxMessageRetries
	}
	uc := c.UserConfig
	if x, ok := uc[KeyMaxMessageRetries]; ok {
		n, ok := x.(int)
		if !ok || n < 0 {
			v.fail("userConfig."+KeyMaxMessageRetries, "%v: want a whole number ≥ 0", x)
		} else if c.MaxMessageRetries != nil && n != *c.MaxMessageRetries {
			v.fail("userConfig."+KeyMaxMessageRetries, "%d disagrees with maxMessageRetries %d; set one", n, *c.MaxMessageRetries)
		} else {
			f.MaxRetries = n
		}
	}
	if x, ok := uc[KeyDeadLetterTopic]; ok {
		s, ok := x.(string)
		switch {
		case !ok || s == "":
			v.fail("userConfig."+KeyDeadLetterTopic, "%v: want a topic name", x)
		case c.DeadLetterTopic != "" && s != c.DeadLetterTopic:
			v.fail("userConfig."+KeyDeadLetterTopic, "%q disagrees with deadLetterTopic %q; set one", s, c.DeadLetterTopic)
		default:
			f.DeadLetterTopic = s
		}
	}
	if x, ok := uc[KeyRetryBackoff]; ok {
		s, _ := x.(string)
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			v.fail("userConfig."+KeyRetryBackoff, "%v: want a positive Go duration such as 500ms", x)
		} else {
			f.RetryBackoff = d
		}
	}
	if f.MaxRetries >= 0 && f.SubscriptionType == Failover {
		field := "maxMessageRetries"
		if c.MaxMessageRetries == nil {
			field = "userConfig." + KeyMaxMessageRetries
		}
		v.fail(field, "retries need a Shared or Key_Shared subscription: the broker counts redeliveries only there, so they cannot be combined with retainOrdering or EFFECTIVELY_ONCE")
	}
	if f.MaxRetries >= 0 && f.DeadLetterTopic == "" {
		// Where retried-out inputs go when the manifest names no topic: one per function,
		// next to its (first) input.
		if len(f.Inputs) > 0 {
			f.DeadLetterTopic = f.Inputs[0] + "-" + f.Name + "-DLQ"
		} else {
			f.DeadLetterTopic = "persistent://" + f.Tenant + "/" + f.Namespace + "/" + f.Name + "-DLQ"
		}
		return
	}
	if f.DeadLetterTopic != "" {
		field := "deadLetterTopic"
		if c.DeadLetterTopic == "" {
			field = "userConfig." + KeyDeadLetterTopic
		}
		f.DeadLetterTopic = v.topic(field, f.DeadLetterTopic, f)
		if f.MaxRetries < 0 {
			v.fail(field, "a dead-letter topic needs maxMessageRetries: after how many retries does a message go there?")
		}
		if slices.Contains(f.Inputs, f.DeadLetterTopic) || f.DeadLetterTopic == f.Output {
			v.fail(field, "%s is also an input or the output", f.DeadLetterTopic)
		}
	}
}
