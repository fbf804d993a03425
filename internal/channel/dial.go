package channel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Egress decides where lojal connects on a customer's behalf. A Web Push
// subscription names a URL the worker will POST to; whoever registers one
// must not be able to point it at the worker's own network (the cloud
// metadata service, the database, an admin port). Egress refuses
// loopback, private, link-local, unique-local, shared, reserved and
// multicast addresses when an endpoint is registered and again when it is
// dialled, on the address actually dialled, so a DNS answer that changes
// in between (rebinding) does not get through.
type Egress struct {
	// Hosts, when set, lists the push service hosts lojal may contact:
	// "fcm.googleapis.com", or "*.notify.windows.com" for any subdomain.
	// Others are refused whatever they resolve to.
	Hosts []string
	// AllowLoopback lets endpoints on loopback addresses through. It is
	// for tests and local development, where the push service is a local
	// process; never set it in production.
	AllowLoopback bool
	// Resolver looks up host names; nil means the system resolver. Tests
	// give a stub, so refusals are tested without sending anything
	// anywhere.
	Resolver Resolver
}

// Resolver is the part of *net.Resolver Egress uses.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// ErrForbiddenAddress means an endpoint's host is not allowed or resolves
// to an address lojal does not connect to on a customer's behalf.
// Refusals are *PermanentError wrapping it: retrying cannot change them.
var ErrForbiddenAddress = errors.New("endpoint refused")

// refuse makes a refusal.
func refuse(format string, args ...any) error {
	return &PermanentError{Err: fmt.Errorf("%w: "+format, append([]any{ErrForbiddenAddress}, args...)...)}
}

// CheckURL vets a push endpoint at registration: an https URL whose host
// is allowed and resolves only to public addresses. A lookup that fails
// for a reason other than "no such host" is returned as it is (the
// caller may retry); every refusal wraps ErrForbiddenAddress.
func (e *Egress) CheckURL(ctx context.Context, endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" || u.User != nil {
		return refuse("want an https URL without user information")
	}
	_, err = e.resolve(ctx, u.Hostname())
	return err
}

// resolve checks host against the allowlist, looks it up, and returns its
// addresses when every one of them is allowed.
func (e *Egress) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if !e.hostAllowed(host) {
		return nil, refuse("host %s is not in the push service allowlist (LOJAL_PUSH_HOSTS)", host)
	}
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		r := e.Resolver
		if r == nil {
			r = net.DefaultResolver
		}
		ips, err := r.LookupIPAddr(ctx, host)
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return nil, refuse("host %s does not exist", host)
		}
		if err != nil {
			return nil, fmt.Errorf("look up %s: %w", host, err)
		}
		for _, ip := range ips {
			if a, ok := netip.AddrFromSlice(ip.IP); ok {
				addrs = append(addrs, a)
			}
		}
	}
	if len(addrs) == 0 {
		return nil, refuse("host %s has no address", host)
	}
	// One forbidden answer refuses the host: which answer a later lookup
	// picks is not ours to choose.
	for _, a := range addrs {
		if why := e.forbidden(a); why != "" {
			return nil, refuse("%s resolves to %s, a %s address", host, a, why)
		}
	}
	return addrs, nil
}

func (e *Egress) hostAllowed(host string) bool {
	if len(e.Hosts) == 0 {
		return true
	}
	for _, h := range e.Hosts {
		h = strings.ToLower(strings.TrimSpace(h))
		if suffix, ok := strings.CutPrefix(h, "*."); ok {
			if strings.HasSuffix(host, "."+suffix) {
				return true
			}
		} else if host == h {
			return true
		}
	}
	return false
}

// Address ranges no push service lives in, beyond what netip classifies.
var deniedPrefixes = []struct {
	prefix netip.Prefix
	why    string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), `"this network"`},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (carrier-grade NAT)"}, // also Alibaba's metadata service
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment"},    // also Oracle's metadata service
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local NAT64"},
	{netip.MustParsePrefix("100::/64"), "discard"},
	{netip.MustParsePrefix("2001::/32"), "Teredo"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// forbidden says what kind of address a is when lojal must not connect to
// it, or "".
func (e *Egress) forbidden(a netip.Addr) string {
	a = a.Unmap()
	switch {
	case a.IsLoopback():
		if e.AllowLoopback {
			return ""
		}
		return "loopback"
	case a.IsUnspecified():
		return "unspecified"
	case a.IsPrivate():
		if a.Is6() {
			return "unique-local"
		}
		return "private"
	case a.IsLinkLocalUnicast():
		return "link-local (cloud metadata)"
	case a.IsMulticast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		return "multicast"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast"
	}
	for _, d := range deniedPrefixes {
		if d.prefix.Contains(a) {
			return d.why
		}
	}
	// Translation prefixes carry an IPv4 address that decides where the
	// packets end up.
	if b := a.As16(); nat64.Contains(a) {
		return e.forbidden(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
	} else if sixToFour.Contains(a) {
		return e.forbidden(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
	}
	return ""
}

// Client returns an HTTP client for push services: it dials only
// addresses Egress allows (checked after the lookup and again, by the
// dialer's Control hook, on the socket's actual remote address), ignores
// proxy settings (a proxy would resolve names for us), and follows no
// redirect (a push service answers; it does not send lojal elsewhere).
// trusted hosts skip the checks: the operator's own HTTP push provider,
// which may well live on a private network.
func (e *Egress) Client(timeout time.Duration, trusted ...string) *http.Client {
	trust := map[string]bool{}
	for _, h := range trusted {
		if h != "" {
			trust[strings.ToLower(h)] = true
		}
	}
	plain := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	guarded := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: e.control}
	tr := &http.Transport{
		Proxy:                 nil,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if trust[strings.ToLower(host)] {
				return plain.DialContext(ctx, network, addr)
			}
			addrs, err := e.resolve(ctx, host)
			if err != nil {
				return nil, err
			}
			// Dial the addresses just checked, not the name: a second
			// lookup could answer differently.
			var errs []error
			for _, a := range addrs {
				c, err := guarded.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
				if err == nil {
					return c, nil
				}
				errs = append(errs, err)
			}
			return nil, errors.Join(errs...)
		},
	}
	return &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// control is the guarded dialer's last word, on the address the socket is
// about to connect to.
func (e *Egress) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return refuse("dial %s: %v", address, err)
	}
	if why := e.forbidden(ap.Addr()); why != "" {
		return refuse("%s is a %s address", ap.Addr(), why)
	}
	return nil
}

// hostOf returns a URL's host name, or "".
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Hostname()
}
