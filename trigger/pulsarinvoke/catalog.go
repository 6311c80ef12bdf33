package pulsarinvoke

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"

	"github.com/fnhost/fnhost/trigger"
)

// target is what Invoke needs to know about a function.
type target struct {
	info trigger.FunctionInfo
	// input is the topic requests go to: the first input topic (in sorted order for input
	// specs); empty when the function only consumes a topics pattern.
	input string
	// manifest is true for a function known from a manifest (built with fnhost's SDK).
	manifest bool
}

// catalog finds functions: in the manifests, else through the admin API, whose answers it
// caches for ttl (an unknown function for ttl/10). Safe for concurrent use.
type catalog struct {
	manifests map[string]*target // by tenant/namespace/name
	order     []string           // manifest functions in their given order
	adminURL  string             // "" when there is no admin API
	http      *http.Client
	ttl       time.Duration
	nss       []string

	mu    sync.Mutex
	cache map[string]cached
	lists map[string]cachedList // by tenant/namespace
}

type cached struct {
	t       *target // nil: not found
	expires time.Time
}

type cachedList struct {
	names   []string
	expires time.Time
}

func newCatalog(cfg *Config) *catalog {
	c := &catalog{manifests: map[string]*target{}, adminURL: strings.TrimRight(cfg.AdminURL, "/"), http: cfg.HTTPClient,
		ttl: cfg.CacheTTL, nss: cfg.Namespaces, cache: map[string]cached{}, lists: map[string]cachedList{}}
	for _, m := range cfg.Functions {
		t := &target{manifest: true, info: trigger.FunctionInfo{
			Function: trigger.Function{Tenant: m.Tenant, Namespace: m.Namespace, Name: m.Name},
			Inputs:   m.Inputs, Output: m.Output, Parallelism: m.Parallelism, Runtime: "host", Timeout: m.Timeout,
		}}
		if len(m.Inputs) > 0 {
			t.input = m.Inputs[0]
		}
		if _, dup := c.manifests[m.FQFN()]; !dup {
			c.order = append(c.order, m.FQFN())
		}
		c.manifests[m.FQFN()] = t
	}
	return c
}

// lookup returns fn's target: trigger.ErrFunctionNotFound when neither the manifests nor the
// admin API know it, trigger.ErrUnavailable when the admin API cannot be asked.
func (c *catalog) lookup(ctx context.Context, fn trigger.Function) (*target, error) {
	if t, ok := c.manifests[fn.String()]; ok {
		return t, nil
	}
	if c.adminURL == "" {
		return nil, fmt.Errorf("%w: %s is in no manifest (and no admin URL is configured)", trigger.ErrFunctionNotFound, fn)
	}
	c.mu.Lock()
	e, ok := c.cache[fn.String()]
	c.mu.Unlock()
	if !ok || time.Now().After(e.expires) {
		t, err := c.fetch(ctx, fn)
		if err != nil {
			return nil, err
		}
		ttl := c.ttl
		if t == nil {
			ttl = c.ttl / 10
		}
		e = cached{t: t, expires: time.Now().Add(ttl)}
		c.mu.Lock()
		c.cache[fn.String()] = e
		c.mu.Unlock()
	}
	if e.t == nil {
		return nil, fmt.Errorf("%w: Pulsar has no function %s", trigger.ErrFunctionNotFound, fn)
	}
	return e.t, nil
}

// fetch asks the admin API for fn's configuration; nil, nil when it does not exist.
func (c *catalog) fetch(ctx context.Context, fn trigger.Function) (*target, error) {
	var fc utils.FunctionConfig
	found, err := c.get(ctx, "/admin/v3/functions/"+url.PathEscape(fn.Tenant)+"/"+url.PathEscape(fn.Namespace)+"/"+url.PathEscape(fn.Name), &fc)
	if err != nil || !found {
		return nil, err
	}
	t := &target{info: trigger.FunctionInfo{Function: fn, Output: fullTopic(fc.Output), Parallelism: fc.Parallelism, Runtime: "pulsar"}}
	if fc.TimeoutMs != nil && *fc.TimeoutMs > 0 {
		t.info.Timeout = time.Duration(*fc.TimeoutMs) * time.Millisecond
	}
	inputs := slices.Clone(fc.Inputs)
	for topic, spec := range fc.InputSpecs {
		if !spec.RegexPattern {
			inputs = append(inputs, topic)
		}
	}
	for i, in := range inputs {
		inputs[i] = fullTopic(in)
	}
	slices.Sort(inputs)
	t.info.Inputs = slices.Compact(inputs)
	if len(t.info.Inputs) > 0 {
		t.input = t.info.Inputs[0]
	}
	return t, nil
}

// functions lists the manifests' functions, then those deployed in the configured namespaces
// that no manifest names. When the admin API fails, it returns the manifests' functions and
// the error.
func (c *catalog) functions(ctx context.Context) ([]trigger.FunctionInfo, error) {
	out := make([]trigger.FunctionInfo, 0, len(c.order))
	for _, fq := range c.order {
		out = append(out, c.manifests[fq].info)
	}
	if c.adminURL == "" {
		return out, nil
	}
	var errs []error
	for _, ns := range c.nss {
		names, err := c.list(ctx, ns)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tenant, namespace, _ := strings.Cut(ns, "/")
		for _, name := range names {
			fn := trigger.Function{Tenant: tenant, Namespace: namespace, Name: name}
			if _, ok := c.manifests[fn.String()]; ok {
				continue
			}
			t, err := c.lookup(ctx, fn)
			if errors.Is(err, trigger.ErrFunctionNotFound) {
				continue // deleted since the list was read
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out = append(out, t.info)
		}
	}
	return out, errors.Join(errs...)
}

func (c *catalog) list(ctx context.Context, ns string) ([]string, error) {
	c.mu.Lock()
	e, ok := c.lists[ns]
	c.mu.Unlock()
	if ok && time.Now().Before(e.expires) {
		return e.names, nil
	}
	var names []string
	tenant, namespace, _ := strings.Cut(ns, "/")
	found, err := c.get(ctx, "/admin/v3/functions/"+url.PathEscape(tenant)+"/"+url.PathEscape(namespace), &names)
	if err != nil {
		return nil, err
	}
	if !found {
		names = nil
	}
	slices.Sort(names)
	c.mu.Lock()
	c.lists[ns] = cachedList{names: names, expires: time.Now().Add(c.ttl)}
	c.mu.Unlock()
	return names, nil
}

// get decodes the JSON answer of GET path into v. It returns false for 404 (and for 400,
// Pulsar's answer to a malformed name); trigger.ErrUnavailable for a transport error or 5xx.
func (c *catalog) get(ctx context.Context, path string, v any) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.adminURL+path, nil)
	if err != nil {
		return false, fmt.Errorf("admin API: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		return false, fmt.Errorf("%w: Pulsar admin API at %s: %w", trigger.ErrUnavailable, c.adminURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	switch {
	case err != nil:
		return false, fmt.Errorf("%w: reading GET %s: %w", trigger.ErrUnavailable, path, err)
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusBadRequest:
		return false, nil
	case resp.StatusCode >= 500:
		return false, fmt.Errorf("%w: GET %s: %s: %s", trigger.ErrUnavailable, path, resp.Status, strings.TrimSpace(string(body)))
	case resp.StatusCode != http.StatusOK:
		return false, fmt.Errorf("admin API: GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return false, fmt.Errorf("admin API: decoding GET %s: %w", path, err)
	}
	return true, nil
}

// fullTopic expands a short topic name as Pulsar does; "" stays "".
func fullTopic(t string) string {
	switch {
	case t == "" || strings.Contains(t, "://"):
		return t
	case strings.Count(t, "/") == 2:
		return "persistent://" + t
	default:
		return "persistent://public/default/" + t
	}
}
