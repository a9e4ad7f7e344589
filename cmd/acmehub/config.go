package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/acmehub/acmehub/internal/ratelimit"
	"github.com/acmehub/acmehub/internal/zone"
)

// Defaults chosen so that `acmehub serve` alone runs a usable dev hub on
// loopback: a SQLite file in ./acmehub-data and the zone acme.test.
const (
	defaultDataDir = "acmehub-data"
	defaultZone    = "acme.test."
	defaultDNS     = "127.0.0.1:8053"
	defaultAPI     = "127.0.0.1:8555"
)

// serveSettings is the table of `acmehub serve` settings, documented by --help.
func serveSettings() *settingSet {
	ss := newSettingSet()
	ss.add("config", "", "config file of `name = value` lines (names as these flags)")
	ss.add("data-dir", defaultDataDir, "directory for the database, key file and bootstrap token when their own settings are empty")
	ss.add("db", "", "SQLite database file (default <data-dir>/acmehub.db)")
	ss.add("db-synchronous", "FULL", "SQLite synchronous mode: FULL survives power loss, NORMAL only a process crash")
	ss.add("key-file", "", "server key file for token hashing and sealing; created (mode 0600) only with a new database (default <data-dir>/acmehub.key)")
	ss.add("bootstrap-token-file", "", "where the first admin token is written (mode 0600) when stdout is not a terminal (default <data-dir>/bootstrap-admin-token)")
	ss.add("zone", defaultZone, "the hub zone this server is authoritative for")
	ss.addList("dns-listen", defaultDNS, "DNS listen address host:port, UDP and TCP; IPv4 or [IPv6]")
	ss.addList("gateway-listen", "", "RFC 2136 gateway listen address host:port, UDP and TCP: TSIG-signed UPDATEs for any zone the keys' rules cover, and the SOA answers of zone discovery (default: none, off; the public listener takes UPDATEs for the hub zone)")
	ss.add("api-listen", defaultAPI, "HTTP API listen address host:port")
	ss.add("api-max-body", "65536", "largest accepted HTTP request body, in bytes")
	ss.add("api-tls-cert", "", "PEM certificate (chain) file for HTTPS on the API; with api-tls-key")
	ss.add("api-tls-key", "", "PEM private key file for HTTPS on the API; with api-tls-cert")
	ss.add("api-proxy-header", "", "forwarded-for header to believe from api-trusted-proxies: X-Forwarded-For or X-Real-IP (default: none, the TCP peer is the source)")
	ss.addList("api-trusted-proxies", "", "CIDRs of reverse proxies whose api-proxy-header is believed")
	ss.add("auth-failures-burst", "10", "failed authentications allowed at once per source network (/24, /56) and per client id before 429")
	ss.add("auth-failures-per", "6s", "after the burst, one failed authentication is forgiven per this time")
	ss.add("update-failures-burst", "20", "RFC 2136: unsigned UPDATEs allowed at once per source network (/24, /56) before REFUSED; failed verifications per source and per key name before they stop being audited")
	ss.add("update-failures-per", "3s", "RFC 2136: after the burst, one failure is forgiven per this time")
	ss.add("update-rate-burst", "120", "RFC 2136: verified UPDATEs allowed at once per TSIG key before REFUSED")
	ss.add("update-rate-per", "500ms", "RFC 2136: after the burst, one more UPDATE per key per this time")
	ss.add("max-values-per-principal", "1000", "most live challenge values one principal may hold (0: no cap)")
	ss.add("public-url", "", "the API's base URL as clients reach it, for acme-dns server_url fields (default: the request's Host; CLI exports: http(s)://<api-listen>)")
	ss.add("httpreq-path", "/httpreq", "path prefix of the lego httpreq endpoints <prefix>/present and <prefix>/cleanup (\"/\": at the root, as acmeproxy)")
	ss.add("acme-dns-path", "/", "path prefix of the acme-dns API <prefix>/register, /update and /health")
	ss.add("acme-dns-config", "", "managed challenge config (delegated) for acme-dns accounts registered without a domain; empty: such registrations are refused")
	ss.add("acme-dns-open-registration", "false", "let anyone call acme-dns /register without a hub token (accounts are owned by the principal acme-dns-public)")
	ss.add("acme-dns-max-accounts", "1000", "most acme-dns accounts one principal may own (0: no cap)")
	ss.addList("ns", "", "nameserver published at the apex as name=addr[+addr...], e.g. ns1.acme.test=192.0.2.1+2001:db8::1 (default ns1.<zone>=127.0.0.1); addresses are glue for names inside the zone")
	ss.add("soa-mbox", "", "SOA contact mailbox as a name (default hostmaster.<zone>)")
	ss.add("soa-refresh", "1h", "SOA refresh timer")
	ss.add("soa-retry", "10m", "SOA retry timer")
	ss.add("soa-expire", "168h", "SOA expire timer")
	ss.add("soa-minimum", "60s", "SOA minimum: the negative-caching TTL (keep it small so a lookup made before a value is set is not cached long)")
	ss.add("apex-ttl", "1h", "TTL of the apex SOA, NS and glue records")
	ss.add("txt-ttl", "60s", "default TTL of challenge TXT records")
	ss.add("value-lifetime", "1h", "default time a challenge value lives before the sweep removes it")
	ss.add("max-value-lifetime", "24h", "longest lifetime a request may ask for")
	ss.add("max-values-per-name", "32", "most TXT values one name may hold")
	ss.add("sweep-interval", "5s", "how often expired values are removed (at most 10s)")
	ss.add("poll-interval", "250ms", "how often the database is polled for changes made by other processes (the admin CLI, other nodes)")
	ss.addList("check-resolver", "", "recursive resolver host:port for delegation checks and propagation (default: the system's, /etc/resolv.conf)")
	ss.addList("check-nameserver-addr", "", "ask a nameserver, by name or address, at another host:port: name=host:port, e.g. ns1.example.org=127.0.0.1:5353")
	ss.add("check-private-addresses", "false", "let delegation checks query nameservers at private, loopback or link-local addresses that check-nameserver-addr does not map")
	ss.add("check-timeout", "2s", "timeout of one DNS query of a delegation or propagation check")
	ss.add("check-interval", "6h", "how often every delegation's CNAME is checked in the background (0: never)")
	ss.add("delegation-unused-after", "2160h", "a delegation without a challenge for this long is reported as unused")
	ss.add("propagation-max-wait", "120s", "longest wait a present may ask for until every hub nameserver serves its value")
	ss.add("upstream-call-timeout", "2m", "timeout of one call to an upstream DNS provider (value-level driver or lego worker)")
	ss.add("upstream-sweep-interval", "30s", "how often values written to domains' own DNS are removed when expired, and failed removals retried")
	ss.add("upstream-max-attempts", "12", "failed removals of an upstream value after which it is reported as failed and no longer retried")
	ss.add("lego-workers", "64", "most lego worker processes (one per credential set in use; 0 turns lego's providers off)")
	ss.add("lego-worker-idle", "10m", "a lego worker process stops after this long without calls")
	ss.add("journal-max-age", "168h", "change journal rows older than this are pruned")
	ss.add("journal-max-rows", "100000", "change journal rows beyond this count are pruned, oldest first")
	ss.add("log-level", "info", "debug, info, warn or error")
	ss.add("log-format", "json", "json or text")
	return ss
}

// nameserver is one NS record at the apex with its glue addresses.
type nameserver struct {
	Name  string
	Addrs []netip.Addr
}

// serveConfig is the validated configuration of `acmehub serve`.
type serveConfig struct {
	DBPath                  string
	Synchronous             string
	KeyFile                 string
	BootstrapTokenFile      string
	Zone                    string
	DNSListen               []string
	GatewayListen           []string
	APIListen               string
	APIMaxBody              int64
	APITLSCert              string
	APITLSKey               string
	ProxyHeader             string
	TrustedProxies          []netip.Prefix
	AuthFailuresBurst       int
	UpdateFailures          ratelimit.Config
	UpdateRate              ratelimit.Config
	AuthFailuresPer         time.Duration
	MaxValuesPerPrincipal   int
	PublicURL               string
	HTTPReqPath             string
	ACMEDNSPath             string
	ACMEDNSConfig           string
	ACMEDNSOpenRegistration bool
	ACMEDNSMaxAccounts      int
	Nameservers             []nameserver
	SOAMbox                 string
	SOARefresh              time.Duration
	SOARetry                time.Duration
	SOAExpire               time.Duration
	SOAMinimum              time.Duration
	ApexTTL                 time.Duration
	TXTTTL                  time.Duration
	ValueLifetime           time.Duration
	MaxValueLifetime        time.Duration
	MaxValuesPerName        int
	SweepInterval           time.Duration
	PollInterval            time.Duration
	CheckResolvers          []string
	CheckAddrs              map[string]string
	CheckTimeout            time.Duration
	CheckPrivate            bool
	CheckInterval           time.Duration
	UnusedAfter             time.Duration
	PropagationMaxWait      time.Duration
	UpstreamCallTimeout     time.Duration
	UpstreamSweepInterval   time.Duration
	UpstreamMaxAttempts     int
	LegoWorkers             int
	LegoWorkerIdle          time.Duration
	JournalMaxAge           time.Duration
	JournalMaxRows          int
	LogLevel                string
	LogFormat               string
}

// problems collects every invalid setting so one error can list them all.
type problems []string

func (p *problems) addf(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return errors.New("invalid settings:\n  - " + strings.Join(p, "\n  - "))
}

// buildServeConfig turns loaded settings into a serveConfig, reporting every
// problem at once.
func buildServeConfig(ss *settingSet) (serveConfig, error) {
	var c serveConfig
	var p problems
	dataDir := ss.get("data-dir")
	orDefault := func(name, file string) string {
		if v := ss.get(name); v != "" {
			return v
		}
		return filepath.Join(dataDir, file)
	}
	c.DBPath = orDefault("db", "acmehub.db")
	c.KeyFile = orDefault("key-file", "acmehub.key")
	c.BootstrapTokenFile = orDefault("bootstrap-token-file", "bootstrap-admin-token")

	c.Synchronous = strings.ToUpper(ss.get("db-synchronous"))
	if c.Synchronous != "FULL" && c.Synchronous != "NORMAL" {
		p.addf("db-synchronous: %q is neither FULL nor NORMAL", ss.get("db-synchronous"))
	}

	zoneName, err := zone.CanonicalOrigin(ss.get("zone"))
	if err != nil {
		p.addf("zone: %v", err)
	}
	c.Zone = zoneName

	c.DNSListen = ss.getList("dns-listen")
	if len(c.DNSListen) == 0 {
		p.addf("dns-listen: at least one address is needed")
	}
	for _, a := range c.DNSListen {
		if err := checkHostPort(a); err != nil {
			p.addf("dns-listen: %v", err)
		}
	}
	c.GatewayListen = ss.getList("gateway-listen")
	for _, a := range c.GatewayListen {
		if err := checkHostPort(a); err != nil {
			p.addf("gateway-listen: %v", err)
		}
	}
	c.APIListen = ss.get("api-listen")
	if err := checkHostPort(c.APIListen); err != nil {
		p.addf("api-listen: %v", err)
	}
	c.APIMaxBody = int64(positiveInt(&p, ss, "api-max-body", 1<<10, 1<<24))
	c.APITLSCert, c.APITLSKey = ss.get("api-tls-cert"), ss.get("api-tls-key")
	if (c.APITLSCert == "") != (c.APITLSKey == "") {
		p.addf("api-tls-cert and api-tls-key: give both or neither")
	}
	switch h := ss.get("api-proxy-header"); strings.ToLower(h) {
	case "":
	case "x-forwarded-for":
		c.ProxyHeader = "X-Forwarded-For"
	case "x-real-ip":
		c.ProxyHeader = "X-Real-IP"
	default:
		p.addf("api-proxy-header: %q is neither X-Forwarded-For nor X-Real-IP", h)
	}
	for _, s := range ss.getList("api-trusted-proxies") {
		pr, err := netip.ParsePrefix(s)
		if err != nil {
			p.addf("api-trusted-proxies: %q is not a CIDR such as 10.0.0.0/8", s)
			continue
		}
		c.TrustedProxies = append(c.TrustedProxies, pr.Masked())
	}
	if c.ProxyHeader != "" && len(c.TrustedProxies) == 0 {
		p.addf("api-proxy-header: set api-trusted-proxies too, or every client could forge its address")
	}
	c.AuthFailuresBurst = positiveInt(&p, ss, "auth-failures-burst", 1, 1<<20)
	c.MaxValuesPerPrincipal = positiveInt(&p, ss, "max-values-per-principal", 0, 1<<30)
	// Unset, the API derives each answer's URLs from the request's Host.
	if v := ss.get("public-url"); v != "" {
		c.PublicURL = publicURL(&p, v, c.APIListen, c.APITLSCert != "")
	}
	c.HTTPReqPath = pathPrefix(&p, "httpreq-path", ss.get("httpreq-path"))
	c.ACMEDNSPath = pathPrefix(&p, "acme-dns-path", ss.get("acme-dns-path"))
	c.ACMEDNSConfig = ss.get("acme-dns-config")
	c.ACMEDNSOpenRegistration = boolSetting(&p, ss, "acme-dns-open-registration")
	c.ACMEDNSMaxAccounts = positiveInt(&p, ss, "acme-dns-max-accounts", 0, 1<<30)

	dur := func(name string, lo, hi time.Duration) time.Duration { return durSetting(&p, ss, name, lo, hi) }
	c.SOARefresh = dur("soa-refresh", time.Minute, 30*24*time.Hour)
	c.SOARetry = dur("soa-retry", time.Minute, 30*24*time.Hour)
	c.SOAExpire = dur("soa-expire", time.Hour, 365*24*time.Hour)
	c.SOAMinimum = dur("soa-minimum", 0, 3*time.Hour)
	c.ApexTTL = dur("apex-ttl", 0, 7*24*time.Hour)
	c.TXTTTL = dur("txt-ttl", 0, 24*time.Hour)
	c.ValueLifetime = dur("value-lifetime", time.Minute, 30*24*time.Hour)
	c.MaxValueLifetime = dur("max-value-lifetime", time.Minute, 365*24*time.Hour)
	if c.ValueLifetime > c.MaxValueLifetime {
		p.addf("value-lifetime: %s is longer than max-value-lifetime %s", c.ValueLifetime, c.MaxValueLifetime)
	}
	c.SweepInterval = dur("sweep-interval", 100*time.Millisecond, 10*time.Second)
	c.PollInterval = dur("poll-interval", 10*time.Millisecond, time.Hour)
	c.CheckPrivate = boolSetting(&p, ss, "check-private-addresses")
	c.CheckTimeout, c.UnusedAfter = checkDurations(&p, ss)
	c.CheckInterval = dur("check-interval", 0, 30*24*time.Hour)
	if c.CheckInterval > 0 && c.CheckInterval < time.Minute {
		p.addf("check-interval: %s is shorter than 1m (0 turns background checks off)", c.CheckInterval)
	}
	c.PropagationMaxWait = dur("propagation-max-wait", time.Second, 30*time.Minute)
	c.UpstreamCallTimeout = dur("upstream-call-timeout", time.Second, 30*time.Minute)
	c.UpstreamSweepInterval = dur("upstream-sweep-interval", 100*time.Millisecond, time.Hour)
	c.UpstreamMaxAttempts = positiveInt(&p, ss, "upstream-max-attempts", 1, 1000)
	c.LegoWorkers = positiveInt(&p, ss, "lego-workers", 0, 1000)
	c.LegoWorkerIdle = dur("lego-worker-idle", time.Second, 24*time.Hour)
	c.CheckResolvers, c.CheckAddrs = checkServers(&p, ss)
	c.AuthFailuresPer = dur("auth-failures-per", time.Millisecond, time.Hour)
	c.UpdateFailures = ratelimit.Config{Burst: positiveInt(&p, ss, "update-failures-burst", 1, 1<<20),
		Per: dur("update-failures-per", time.Millisecond, time.Hour)}
	c.UpdateRate = ratelimit.Config{Burst: positiveInt(&p, ss, "update-rate-burst", 1, 1<<20),
		Per: dur("update-rate-per", time.Microsecond, time.Hour)}
	c.JournalMaxAge = dur("journal-max-age", time.Minute, 10*365*24*time.Hour)
	c.JournalMaxRows = positiveInt(&p, ss, "journal-max-rows", 100, 1<<31-1)
	c.MaxValuesPerName = positiveInt(&p, ss, "max-values-per-name", 1, 1000)

	if c.Zone != "" {
		c.SOAMbox = ss.get("soa-mbox")
		if c.SOAMbox == "" {
			c.SOAMbox = "hostmaster." + c.Zone
		}
		c.SOAMbox = strings.ToLower(fqdn(c.SOAMbox))
		if _, err := zone.CanonicalOrigin(c.SOAMbox); err != nil {
			p.addf("soa-mbox: %v", err)
		}
		c.Nameservers = parseNameservers(&p, c.Zone, ss.getList("ns"))
	}

	c.LogLevel = strings.ToLower(ss.get("log-level"))
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		p.addf("log-level: %q is not debug, info, warn or error", ss.get("log-level"))
	}
	c.LogFormat = strings.ToLower(ss.get("log-format"))
	if c.LogFormat != "json" && c.LogFormat != "text" {
		p.addf("log-format: %q is neither json nor text", ss.get("log-format"))
	}
	return c, p.err()
}

// durSetting reads a duration setting within lo..hi.
func durSetting(p *problems, ss *settingSet, name string, lo, hi time.Duration) time.Duration {
	d, err := time.ParseDuration(ss.get(name))
	switch {
	case err != nil:
		p.addf("%s: %q is not a duration such as 60s or 1h", name, ss.get(name))
	case d < lo || d > hi:
		p.addf("%s: %s is outside %s..%s", name, d, lo, hi)
	}
	return d
}

// checkDurations reads the check settings' durations, with the bounds
// serve and the delegation commands share.
func checkDurations(p *problems, ss *settingSet) (timeout, unusedAfter time.Duration) {
	return durSetting(p, ss, "check-timeout", 100*time.Millisecond, time.Minute),
		durSetting(p, ss, "delegation-unused-after", time.Hour, 10*365*24*time.Hour)
}

func positiveInt(p *problems, ss *settingSet, name string, lo, hi int) int {
	n, err := strconv.Atoi(ss.get(name))
	if err != nil || n < lo || n > hi {
		p.addf("%s: %q is not a whole number from %d to %d", name, ss.get(name), lo, hi)
	}
	return n
}

// checkServers reads where delegation checks and propagation send their
// queries: the recursive resolvers, and nameservers (by lower-case fqdn or
// address) asked at another host:port.
func checkServers(p *problems, ss *settingSet) (resolvers []string, addrs map[string]string) {
	for _, r := range ss.getList("check-resolver") {
		if err := checkHostPort(r); err != nil {
			p.addf("check-resolver: %v", err)
		}
		resolvers = append(resolvers, r)
	}
	addrs = map[string]string{}
	for _, e := range ss.getList("check-nameserver-addr") {
		key, to, ok := strings.Cut(e, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		if ip, err := netip.ParseAddr(key); err == nil {
			key = ip.Unmap().String()
		} else if n, err := zone.CanonicalOrigin(key); err == nil {
			key = n
		} else {
			ok = false
		}
		if err := checkHostPort(to); !ok || err != nil {
			p.addf("check-nameserver-addr: %q is not name=host:port or address=host:port", e)
			continue
		}
		addrs[key] = to
	}
	return resolvers, addrs
}

func boolSetting(p *problems, ss *settingSet, name string) bool {
	b, err := strconv.ParseBool(ss.get(name))
	if err != nil {
		p.addf("%s: %q is neither true nor false", name, ss.get(name))
	}
	return b
}

// pathPrefix checks an HTTP path prefix and returns it without a trailing
// slash: "/" (the root) becomes "".
func pathPrefix(p *problems, name, v string) string {
	v = strings.TrimSuffix(v, "/")
	if v == "" {
		return ""
	}
	if !strings.HasPrefix(v, "/") || strings.ContainsAny(v, "{}?#% \t") || strings.Contains(v, "//") {
		p.addf("%s: %q is not a path such as /httpreq", name, v)
	}
	return v
}

// publicURL returns the API's base URL as clients reach it, without a
// trailing slash.
func publicURL(p *problems, v, apiListen string, tls bool) string {
	if v == "" {
		scheme := "http"
		if tls {
			scheme = "https"
		}
		host, port, err := net.SplitHostPort(apiListen)
		if err != nil {
			return "" // reported for api-listen
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "localhost"
		}
		return scheme + "://" + net.JoinHostPort(host, port)
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		p.addf("public-url: %q is not a URL such as https://hub.example.net", v)
		return ""
	}
	return strings.TrimSuffix(v, "/")
}

func checkHostPort(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q is not host:port (IPv6 as [::1]:53)", a)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q has no valid port", a)
	}
	if host != "" && host != "localhost" {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("%q: host must be an IP address", a)
		}
	}
	return nil
}

// parseNameservers reads "name=addr+addr" entries; with none, the zone gets
// ns1.<zone> at 127.0.0.1 so a dev hub is complete on its own.
func parseNameservers(p *problems, zoneName string, entries []string) []nameserver {
	if len(entries) == 0 {
		entries = []string{"ns1." + zoneName + "=127.0.0.1"}
	}
	var out []nameserver
	seen := map[string]bool{}
	for _, e := range entries {
		name, addrs, _ := strings.Cut(e, "=")
		n, err := zone.CanonicalOrigin(name)
		if err != nil {
			p.addf("ns: %q: %v", e, err)
			continue
		}
		if seen[n] {
			p.addf("ns: %s is listed twice", n)
			continue
		}
		seen[n] = true
		ns := nameserver{Name: n}
		for _, a := range strings.Split(addrs, "+") {
			if a = strings.TrimSpace(a); a == "" {
				continue
			}
			ip, err := netip.ParseAddr(a)
			if err != nil {
				p.addf("ns: %q: %q is not an IP address", e, a)
				continue
			}
			ns.Addrs = append(ns.Addrs, ip.Unmap())
		}
		inZone := n == zoneName || strings.HasSuffix(n, "."+zoneName)
		if inZone && len(ns.Addrs) == 0 {
			p.addf("ns: %s is inside the zone, so it needs glue addresses (name=addr)", n)
		}
		out = append(out, ns)
	}
	return out
}

func fqdn(s string) string {
	if strings.HasSuffix(s, ".") {
		return s
	}
	return s + "."
}
