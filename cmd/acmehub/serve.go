package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/api"
	"github.com/acmehub/acmehub/dnsserver"
	"github.com/acmehub/acmehub/internal/dnscheck"
	"github.com/acmehub/acmehub/internal/dnsupdate"
	"github.com/acmehub/acmehub/internal/hub"
	"github.com/acmehub/acmehub/internal/metrics"
	"github.com/acmehub/acmehub/internal/ratelimit"
	"github.com/acmehub/acmehub/internal/upstream"
	"github.com/acmehub/acmehub/internal/upstream/legoworker"
	"github.com/acmehub/acmehub/internal/upstream/registry"
	"github.com/acmehub/acmehub/internal/zone"
	"github.com/acmehub/acmehub/store"
)

// shutdownGrace bounds how long in-flight work may take after SIGTERM.
const shutdownGrace = 10 * time.Second

func serveCommand(ctx context.Context, args []string, e env) error {
	ss := serveSettings()
	fs := newFlagSet("serve", "Usage: acmehub serve [settings]\n\nRuns the authoritative DNS server for the hub zone and the HTTP API.", ss, e.stderr)
	rest, err := ss.load(fs, args, e.getenv, "config")
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("invalid settings:\n  - %w", err)
	}
	if len(rest) > 0 {
		return fmt.Errorf("serve takes no arguments, got %q", rest)
	}
	cfg, err := buildServeConfig(ss)
	if err != nil {
		return err
	}
	logger := newLogger(cfg, e.stderr)
	return serve(ctx, cfg, logger, e)
}

func newLogger(cfg serveConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated in buildServeConfig
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// serve wires the parts in order: store, key, zone view, then the DNS and
// HTTP front ends; it tears them down in reverse on ctx's end.
func serve(ctx context.Context, cfg serveConfig, logger *slog.Logger, e env) (err error) {
	if err := os.MkdirAll(filepath.Dir(cfg.DBPath), 0o700); err != nil {
		return fmt.Errorf("database directory: %w", err)
	}
	view := zone.NewView(cfg.Zone)
	// The store reports each commit to the follower before acknowledging
	// it, so an API write is in this process's DNS answers when it returns.
	var follower *zone.Follower
	db, err := store.Open(ctx, store.Config{
		Path:             cfg.DBPath,
		Synchronous:      cfg.Synchronous,
		MaxValuesPerName: cfg.MaxValuesPerName,
		JournalMaxAge:    cfg.JournalMaxAge,
		JournalMaxRows:   cfg.JournalMaxRows,
		OnCommit:         func(c []zone.Change) { follower.Deliver(c) },
		Logger:           logger,
	})
	if err != nil {
		return fmt.Errorf("open database %s: %w", cfg.DBPath, err)
	}
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close database: %w", cerr)
		}
		logger.Info("database closed")
	}()
	follower = zone.NewFollower(db, view, logger, cfg.PollInterval)

	kr, err := openKeyring(ctx, db, cfg.KeyFile, cfg.DBPath)
	if err != nil {
		return err
	}
	created, err := bootstrapAdmin(ctx, db, kr, e.stdout, cfg.BootstrapTokenFile)
	if err != nil {
		return err
	}
	if created && !isTerminal(e.stdout) {
		logger.Info("bootstrap admin token created and written to a file; read it once and keep it safe", "file", cfg.BootstrapTokenFile)
	}

	// Background work stops when runCtx ends, after the front ends.
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer func() {
		cancelRun()
		wg.Wait()
	}()
	wg.Go(func() { _ = follower.Run(runCtx) })
	select {
	case <-follower.Ready():
	case <-ctx.Done():
		return nil
	}
	wg.Go(func() {
		if err := db.RunSweeper(runCtx, cfg.SweepInterval); err != nil && runCtx.Err() == nil {
			logger.Error("sweeper stopped", "err", err)
		}
	})

	m := metrics.New(view)
	// The service needs the DNS server's bound addresses (propagation), and
	// the server's UPDATE handler needs the service: it gets it once it
	// exists; UPDATEs before that are refused.
	updates := &lateBackend{}
	upd, err := dnsupdate.New(dnsupdate.Config{
		Backend: updates, Zone: cfg.Zone, MName: cfg.Nameservers[0].Name, RName: cfg.SOAMbox,
		Observer: m.DNSUpdates(), Logger: logger,
		Limits: dnsupdate.Limits{FailuresPerSource: cfg.UpdateFailures, FailuresPerKey: cfg.UpdateFailures,
			UpdatesPerKey: cfg.UpdateRate},
	})
	if err != nil {
		return err
	}
	dcfg := dnsConfig(cfg, logger, m)
	dcfg.Updates = upd
	dnsSrv, err := startDNS(dcfg, view, cfg.DNSListen, logger, "dns")
	if err != nil {
		return err
	}
	defer stopDNS(dnsSrv, logger, "dns")
	if len(cfg.GatewayListen) > 0 {
		dcfg.Gateway = true
		gw, err := startDNS(dcfg, view, cfg.GatewayListen, logger, "rfc2136 gateway")
		if err != nil {
			return err
		}
		defer stopDNS(gw, logger, "rfc2136 gateway")
	}

	checkCfg := dnscheck.Config{Recursive: cfg.CheckResolvers, Addrs: cfg.CheckAddrs, Timeout: cfg.CheckTimeout,
		AllowPrivate: cfg.CheckPrivate}
	checker, err := dnscheck.New(checkCfg)
	switch {
	case err != nil && len(cfg.CheckResolvers) == 0:
		// No system resolver (a bare container): the hub still serves;
		// only delegation checks and propagation status are off.
		logger.Warn("delegation checks and propagation status are off: no recursive resolver; set check-resolver", "err", err)
		checker = nil
	case err != nil:
		return fmt.Errorf("dns checks: %w", err)
	}
	upstreams, closeUpstreams := upstreamRegistry(cfg, logger)
	defer closeUpstreams()
	observeUpstream := m.Upstream(hub.UpstreamStates, db.CountUpstreamRecords)
	svc := hub.New(db, kr, hub.Config{
		Zone:                  cfg.Zone,
		DefaultTTL:            cfg.TXTTTL,
		DefaultLifetime:       cfg.ValueLifetime,
		MaxValueLifetime:      cfg.MaxValueLifetime,
		MaxValuesPerPrincipal: cfg.MaxValuesPerPrincipal,
		ACMEDNSConfig:         cfg.ACMEDNSConfig,
		ACMEDNSMaxAccounts:    cfg.ACMEDNSMaxAccounts,
		DNSCheck:              checker,
		Nameservers:           checkNameservers(cfg.Nameservers),
		MaxWait:               cfg.PropagationMaxWait,
		PropagationCheck:      propagationChecker(checkCfg, cfg.Nameservers, checker, dnsSrv.Addrs(), logger),
		Failures:              ratelimit.Config{Burst: cfg.AuthFailuresBurst, Per: cfg.AuthFailuresPer},
		Logger:                logger,
		UnusedAfter:           cfg.UnusedAfter,
		CheckStates:           m.Delegations(hub.CheckStates),
		Upstreams:             upstreams,
		UpstreamMaxAttempts:   cfg.UpstreamMaxAttempts,
		UpstreamObserve:       observeUpstream,
		UpstreamCallTimeout:   cfg.UpstreamCallTimeout,
	})
	m.Values(db.CountValues)
	updates.set(svc.UpdateBackend())
	// The background delegation checker, like the sweeper: stops with runCtx.
	if checker != nil && cfg.CheckInterval > 0 {
		wg.Go(func() {
			if err := svc.RunChecks(runCtx, cfg.CheckInterval); err != nil {
				logger.Error("delegation checker stopped", "err", err)
			}
		})
	}
	wg.Go(func() {
		if err := svc.RunUpstreamSweeper(runCtx, cfg.UpstreamSweepInterval); err != nil {
			logger.Error("upstream sweeper stopped", "err", err)
		}
	})
	handler, err := api.New(svc, api.Config{
		MaxBody: cfg.APIMaxBody, Metrics: m.Handler(), Logger: logger,
		Proxy:     api.ProxyTrust{Header: cfg.ProxyHeader, Proxies: cfg.TrustedProxies},
		PublicURL: cfg.PublicURL, HTTPReqPath: cfg.HTTPReqPath,
		ACMEDNSPath: cfg.ACMEDNSPath, ACMEDNSOpenRegistration: cfg.ACMEDNSOpenRegistration,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.APIListen)
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	httpSrv := api.NewServer(handler, logger)
	httpErr := make(chan error, 1)
	if cfg.APITLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.APITLSCert, cfg.APITLSKey)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("api tls: %w", err)
		}
		httpSrv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		go func() { httpErr <- httpSrv.ServeTLS(ln, "", "") }()
	} else {
		go func() { httpErr <- httpSrv.Serve(ln) }()
		if !isLoopback(ln.Addr()) {
			logger.Warn("the API serves plain HTTP on a non-loopback address: tokens travel in clear text; set api-tls-cert and api-tls-key, or put a TLS proxy in front and listen on loopback",
				"addr", ln.Addr().String())
		}
	}
	logger.Info("api listening", "addr", ln.Addr().String(), "zone", cfg.Zone, "tls", cfg.APITLSCert != "")

	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-httpErr:
		return fmt.Errorf("api: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := httpSrv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Warn("api shutdown", "err", err)
	}
	// Background operations (Certify's requestbegin) still write to the
	// database: let them finish before it closes.
	if err := handler.Shutdown(sctx); err != nil {
		logger.Warn("api background operations", "err", err)
	}
	logger.Info("api stopped")
	return nil
}

// isLoopback reports whether a listener is reachable only from this host.
func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// propagationChecker is checker, or when a nameserver address is one this
// process's DNS server listens on (the default ns1.<zone>=127.0.0.1 of a
// hub on 127.0.0.1:8053), a client built from checker's own settings
// (base) that asks that address at the listening port: port 53 there is
// not the hub. check-nameserver-addr mappings win. nil when checker is
// nil.
//
// base.AllowPrivate (check-private-addresses) is kept but does not apply:
// it guards delegation checks, which follow NS records a domain's owner
// chose; the hub zone's own nameservers are the operator's and always
// asked, loopback and private addresses included, by design.
func propagationChecker(base dnscheck.Config, nameservers []nameserver, checker *dnscheck.Client, listening []net.Addr, logger *slog.Logger) *dnscheck.Client {
	if checker == nil {
		return nil
	}
	addrs := maps.Clone(base.Addrs)
	if addrs == nil {
		addrs = map[string]string{}
	}
	own := false
	for _, n := range nameservers {
		if _, ok := addrs[n.Name]; ok {
			continue
		}
		for _, a := range n.Addrs {
			if _, ok := addrs[a.String()]; ok {
				continue
			}
			for _, l := range listening {
				u, ok := l.(*net.UDPAddr)
				if !ok {
					continue
				}
				ip, _ := netip.AddrFromSlice(u.IP)
				if ip = ip.Unmap(); ip == a || ip.IsUnspecified() && a.IsLoopback() {
					addrs[a.String()] = net.JoinHostPort(a.String(), strconv.Itoa(u.Port))
					own = true
					break
				}
			}
		}
	}
	if !own {
		return checker
	}
	cfg := base
	cfg.Addrs = addrs
	c, err := dnscheck.New(cfg)
	if err != nil {
		logger.Warn("propagation checks ask this hub's own nameserver addresses on port 53", "err", err)
		return checker
	}
	return c
}

func checkNameservers(nss []nameserver) []dnscheck.Nameserver {
	out := make([]dnscheck.Nameserver, 0, len(nss))
	for _, n := range nss {
		out = append(out, dnscheck.Nameserver{Name: n.Name, Addrs: n.Addrs})
	}
	return out
}

// startDNS starts a DNS server on addrs; what names it in logs and errors.
func startDNS(cfg dnsserver.Config, view dnsserver.Zone, addrs []string, logger *slog.Logger, what string) (*dnsserver.Server, error) {
	srv, err := dnsserver.New(cfg, view)
	if err != nil {
		return nil, err
	}
	if err := srv.Listen(addrs...); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if cfg.Gateway {
		logger.Info("rfc2136 gateway listening", "addrs", addrStrings(srv.Addrs()))
	}
	return srv, nil
}

func stopDNS(srv *dnsserver.Server, logger *slog.Logger, what string) {
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	_ = srv.Shutdown(sctx)
	logger.Info(what + " stopped")
}

func addrStrings(as []net.Addr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

// lateBackend is the UPDATE handler's backend until and after the service
// exists (see serve): before, key lookups and changes fail with SERVFAIL
// and nothing is allowed.
type lateBackend struct {
	b atomic.Pointer[hub.UpdateBackend]
}

func (l *lateBackend) set(b hub.UpdateBackend) { l.b.Store(&b) }

// errStarting is every backend call's error until the service exists:
// SERVFAIL (the client retries later), not BADKEY, since the key may be
// good (dnsupdate honours an error's Rcode).
var errStarting error = startingError{}

type startingError struct{}

func (startingError) Error() string { return "the hub is starting" }
func (startingError) Rcode() int    { return dns.RcodeServerFailure }

func (l *lateBackend) Key(ctx context.Context, name string, src netip.Addr) (dnsupdate.Key, error) {
	if b := l.b.Load(); b != nil {
		return b.Key(ctx, name, src)
	}
	return dnsupdate.Key{}, errStarting
}

func (l *lateBackend) Allowed(ctx context.Context, key *dnsupdate.Key, name string) bool {
	b := l.b.Load()
	return b != nil && b.Allowed(ctx, key, name)
}

func (l *lateBackend) Values(ctx context.Context, key dnsupdate.Key, name string) ([]string, error) {
	if b := l.b.Load(); b != nil {
		return b.Values(ctx, key, name)
	}
	return nil, errStarting
}

func (l *lateBackend) Add(ctx context.Context, key dnsupdate.Key, name, value string, src netip.Addr) error {
	if b := l.b.Load(); b != nil {
		return b.Add(ctx, key, name, value, src)
	}
	return errStarting
}

func (l *lateBackend) Remove(ctx context.Context, key dnsupdate.Key, name, value string, src netip.Addr) error {
	if b := l.b.Load(); b != nil {
		return b.Remove(ctx, key, name, value, src)
	}
	return errStarting
}

func (l *lateBackend) Refused(ctx context.Context, key *dnsupdate.Key, keyName string, src netip.Addr, zone, reason string, rcode int) {
	if b := l.b.Load(); b != nil {
		b.Refused(ctx, key, keyName, src, zone, reason, rcode)
	}
}

func dnsConfig(cfg serveConfig, logger *slog.Logger, m *metrics.Metrics) dnsserver.Config {
	ns := make([]dnsserver.NS, 0, len(cfg.Nameservers))
	for _, n := range cfg.Nameservers {
		ns = append(ns, dnsserver.NS{Name: n.Name, Addrs: n.Addrs})
	}
	return dnsserver.Config{
		Origin:      cfg.Zone,
		Nameservers: ns,
		Mbox:        cfg.SOAMbox,
		Refresh:     cfg.SOARefresh,
		Retry:       cfg.SOARetry,
		Expire:      cfg.SOAExpire,
		Minimum:     cfg.SOAMinimum,
		TTL:         cfg.ApexTTL,
		Observer:    m.ObserveDNS,
		Logger:      logger,
	}
}

// upstreamRegistry makes the upstream drivers: the value-level ones, and
// lego's providers in worker processes (this executable, "lego-worker")
// unless lego-workers is 0. The returned func stops the workers.
func upstreamRegistry(cfg serveConfig, logger *slog.Logger) (*registry.Registry, func()) {
	opts := upstream.Options{Timeout: cfg.UpstreamCallTimeout}
	if cfg.LegoWorkers == 0 {
		return registry.New(opts, nil), func() {}
	}
	pool := legoworker.NewPool(legoworker.PoolConfig{
		Resolvers: cfg.CheckResolvers, CallTimeout: cfg.UpstreamCallTimeout, IdleTimeout: cfg.LegoWorkerIdle,
		MaxWorkers: cfg.LegoWorkers, Logger: logger,
	})
	return registry.New(opts, pool), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := pool.Close(ctx); err != nil {
			logger.Warn("lego workers", "err", err)
		}
	}
}
