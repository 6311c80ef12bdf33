package trigger

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// errCallbackRefused is wrapped by every refusal of a callback destination.
var errCallbackRefused = errors.New("trigger: callback destination refused")

// callbackPolicy decides where callbacks may go (X-Callback-Url), against server-side request
// forgery: by default only to public unicast addresses, plus loopback while the trigger itself
// listens on loopback (local development), plus what Config.CallbackAllow opens. It is applied
// twice: when the request comes (the URL's host and what it resolves to: a 400 the caller can
// read) and when the callback connects (the address actually dialled, so a name that resolves
// to a public address at request time and to a private one later, DNS rebinding, is refused).
// Safe for concurrent use.
type callbackPolicy struct {
	nets     []netip.Prefix
	hosts    []string // exact names, or suffixes starting with "." for *.name patterns
	loopback atomic.Bool
	// lookup resolves a host name (net.DefaultResolver.LookupNetIP); tests replace it.
	lookup        func(ctx context.Context, network, host string) ([]netip.Addr, error)
	lookupTimeout time.Duration // bounds lookup at request time: Config.CallbackTimeout
	client        *http.Client  // sends callbacks, connecting through the policy's dialer
}

// parseCallbackAllow parses Config.CallbackAllow entries: an IP (10.1.2.3, fd00::1), a CIDR
// (10.1.0.0/16), a host name (hooks.internal) or a wildcard (*.corp.example: any name below
// corp.example, not corp.example itself). Names are compared case-insensitively.
func parseCallbackAllow(entries []string) (nets []netip.Prefix, hosts []string, errs []error) {
	for i, e := range entries {
		e = strings.TrimSpace(e)
		if p, err := netip.ParsePrefix(e); err == nil {
			nets = append(nets, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(e); err == nil {
			a = a.Unmap()
			nets = append(nets, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		name := strings.ToLower(strings.TrimSuffix(e, "."))
		wild := strings.HasPrefix(name, "*.")
		if wild {
			name = name[1:] // ".corp.example"
		}
		if !hostPattern(strings.TrimPrefix(name, ".")) {
			errs = append(errs, fmt.Errorf("CallbackAllow[%d] %q: want an IP, a CIDR, a host name or *.domain", i, entries[i]))
			continue
		}
		hosts = append(hosts, name)
	}
	return nets, hosts, errs
}

// hostPattern reports whether s is a DNS name: dot-separated labels of letters, digits, - and _.
func hostPattern(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// newCallbackPolicy builds the policy of a defaulted, valid cfg and the client that sends
// callbacks through it.
// Loopback is allowed only for local development: the trigger listens on loopback and
// authenticates nobody. Behind a proxy on the same host, with auth on, loopback callbacks
// would reach every local port (the Pulsar admin API, the trigger itself).
func newCallbackPolicy(cfg *Config, authOff bool) *callbackPolicy {
	nets, hosts, _ := parseCallbackAllow(cfg.CallbackAllow) // Validate reported any error
	p := &callbackPolicy{nets: nets, hosts: hosts, lookup: net.DefaultResolver.LookupNetIP, lookupTimeout: cfg.CallbackTimeout}
	p.loopback.Store(loopback(cfg.Addr) && authOff)
	p.client = p.guard(cfg.Client)
	return p
}

// guard returns c sending through the policy's dialer. A nil Transport or an *http.Transport is
// cloned with that dialer and without a proxy (a proxy would connect on the trigger's behalf,
// out of the policy's sight); any other RoundTripper is kept and gets only the request-time
// check.
func (p *callbackPolicy) guard(c *http.Client) *http.Client {
	g := *c
	// A redirect is not followed: it would re-post the signed body to a destination the
	// request-time check never saw. The 3xx is the delivery's answer (a failure).
	g.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	var t *http.Transport
	switch rt := c.Transport.(type) {
	case nil:
		t = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		t = rt.Clone()
	default:
		return &g
	}
	d := &net.Dialer{ControlContext: p.control}
	t.Proxy = nil
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		return d.DialContext(context.WithValue(ctx, dialHostKey{}, host), network, addr)
	}
	t.DialTLSContext = nil // TLS goes over DialContext's connection
	g.Transport = t
	return &g
}

// dialHostKey carries the host name being dialled to control, which sees addresses only.
type dialHostKey struct{}

// control is the dialer's check of every address it connects to, after resolution: a refusal
// aborts that connection attempt before the SYN.
func (p *callbackPolicy) control(ctx context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot parse dialled address %q: %w", errCallbackRefused, address, err)
	}
	host, _ := ctx.Value(dialHostKey{}).(string)
	if err := p.check(host, ap.Addr()); err != nil {
		return fmt.Errorf("%w: %w", errCallbackRefused, err)
	}
	return nil
}

// allowedHost reports whether host matches a CallbackAllow name or wildcard.
func (p *callbackPolicy) allowedHost(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "" {
		return false
	}
	for _, h := range p.hosts {
		if h == host || (h[0] == '.' && strings.HasSuffix(host, h)) {
			return true
		}
	}
	return false
}

// check says whether a callback for host may connect to ip, and why not.
func (p *callbackPolicy) check(host string, ip netip.Addr) error {
	ip = ip.Unmap()
	if p.allowedHost(host) {
		return nil
	}
	for _, n := range p.nets {
		if n.Contains(ip) {
			return nil
		}
	}
	if ip.IsLoopback() && p.loopback.Load() {
		return nil
	}
	if why := nonPublic(ip); why != "" {
		return fmt.Errorf("%s is %s; callbacks go to public addresses only unless allowed (Config.CallbackAllow, FNHOST_TRIGGER_CALLBACK_ALLOW)",
			ip, why)
	}
	return nil
}

// specialNets are ranges that are neither private nor public unicast by netip's predicates and
// must not be reached by a callback.
var specialNets = []struct {
	p   netip.Prefix
	why string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), `in 0.0.0.0/8 ("this network")`},
	{netip.MustParsePrefix("100.64.0.0/10"), "a shared (carrier-grade NAT) address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "an IETF protocol assignment"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"},
	{netip.MustParsePrefix("fec0::/10"), "a site-local address"},
	{netip.MustParsePrefix("::/96"), "an IPv4-compatible IPv6 address (deprecated)"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "a local-use NAT64 address"},
	{netip.MustParsePrefix("100::/64"), "a discard-only address"},
	{netip.MustParsePrefix("2001::/32"), "a Teredo address"},
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation address"},
}

// nonPublic says why ip is not a public unicast address, or "" when it is. Addresses that
// embed an IPv4 address (NAT64 64:ff9b::/96, 6to4 2002::/16) are judged by it.
func nonPublic(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid():
		return "not an address"
	case ip.IsUnspecified():
		return "the unspecified address"
	case ip.IsLoopback():
		return "a loopback address (allowed only while the trigger listens on loopback without authentication)"
	case ip.IsLinkLocalUnicast():
		return "a link-local address (cloud metadata services live there)"
	case ip.IsMulticast():
		return "a multicast address"
	case ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "the broadcast address"
	case ip.IsPrivate():
		return "a private address"
	}
	for _, s := range specialNets {
		if s.p.Contains(ip) {
			return s.why
		}
	}
	if ip.Is6() {
		b := ip.As16()
		var v4 netip.Addr
		switch {
		case netip.MustParsePrefix("64:ff9b::/96").Contains(ip):
			v4 = netip.AddrFrom4([4]byte(b[12:16]))
		case netip.MustParsePrefix("2002::/16").Contains(ip):
			v4 = netip.AddrFrom4([4]byte(b[2:6]))
		}
		if v4.IsValid() {
			if why := nonPublic(v4); why != "" {
				return "an address embedding " + v4.String() + ", " + why
			}
		}
	}
	if !ip.IsGlobalUnicast() {
		return "not a global unicast address"
	}
	return ""
}

// checkURL is the request-time check of X-Callback-Url (already checked by parseCallbackURL):
// its host, or every address it resolves to now, must be allowed. refusal says why it is not
// (a name that does not resolve is refused too); err is a lookup that failed otherwise (a
// timeout; the lookup is bounded by Config.CallbackTimeout), a temporary failure.
func (p *callbackPolicy) checkURL(ctx context.Context, raw string) (refusal, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return err, nil
	}
	host := u.Hostname()
	if ip, perr := netip.ParseAddr(host); perr == nil {
		if err := p.check("", ip); err != nil {
			return fmt.Errorf("host %s", err), nil
		}
		return nil, nil
	}
	if p.allowedHost(host) {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.lookupTimeout)
	defer cancel()
	ips, err := p.lookup(ctx, "ip", host)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return fmt.Errorf("host %q does not resolve", host), nil
		}
		return nil, fmt.Errorf("resolving the callback host %q: %w", host, err)
	}
	if len(ips) == 0 {
		return fmt.Errorf("host %q has no address", host), nil
	}
	for _, ip := range ips {
		if err := p.check(host, ip); err != nil {
			return fmt.Errorf("host %q resolves to %w", host, err), nil
		}
	}
	return nil, nil
}
