// Package metrics holds the hub's Prometheus collectors and serves them.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the registry of one hub process.
type Metrics struct {
	reg     *prometheus.Registry
	queries *prometheus.CounterVec
	latency prometheus.Histogram
}

// ZoneStats reports the in-memory view for the gauges.
type ZoneStats interface {
	Len() int
	Serial() int64
}

// New registers the collectors. zone may be nil.
func New(zone ZoneStats) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.queries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "acmehub_dns_queries_total",
		Help: "DNS queries answered, by query type and response code.",
	}, []string{"qtype", "rcode"})
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "acmehub_dns_answer_duration_seconds",
		Help:    "Time from a query's arrival in the handler to its reply being written.",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .05, .25, 1},
	})
	m.reg.MustRegister(m.queries, m.latency)
	if zone != nil {
		m.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "acmehub_zone_names",
				Help: "Names in the in-memory view of the hub zone.",
			}, func() float64 { return float64(zone.Len()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "acmehub_zone_serial",
				Help: "Zone serial (the int64 counter) served by the in-memory view.",
			}, func() float64 { return float64(zone.Serial()) }),
		)
	}
	return m
}

// ObserveDNS counts one answered query. It is called on the DNS hot path.
// Label values are limited to known types and codes, so the series count
// stays bounded whatever strangers send.
func (m *Metrics) ObserveDNS(qtype uint16, rcode int, elapsed time.Duration) {
	if _, known := dns.TypeToString[qtype]; !known {
		qtype = 0
	}
	if _, known := dns.RcodeToString[rcode]; !known {
		rcode = -1
	}
	m.queries.WithLabelValues(typeLabel(qtype), rcodeLabel(rcode)).Inc()
	m.latency.Observe(elapsed.Seconds())
}

func typeLabel(t uint16) string {
	if t == 0 {
		return "other"
	}
	return dns.TypeToString[t]
}

func rcodeLabel(r int) string {
	if r < 0 {
		return "other"
	}
	if s, ok := dns.RcodeToString[r]; ok {
		return s
	}
	return strconv.Itoa(r)
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry lets later parts register their own collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Delegations returns a function that sets the gauge
// acmehub_delegations{state} from counts per check state (hub.Config's
// CheckStates); every state of states is set, 0 when absent from counts.
func (m *Metrics) Delegations(states []string) func(counts map[string]int) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "acmehub_delegations",
		Help: "Delegations with a domain, by the state of their last check (unchecked: never checked).",
	}, []string{"state"})
	m.reg.MustRegister(g)
	return func(counts map[string]int) {
		for _, s := range states {
			g.WithLabelValues(s).Set(float64(counts[s]))
		}
	}
}

// Values registers the gauge acmehub_txt_values, read on each scrape from
// count (the store's count of TXT values in the zone). A failed count
// reports the last good one.
func (m *Metrics) Values(count func(ctx context.Context) (int, error)) {
	var mu sync.Mutex
	last := 0.0
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "acmehub_txt_values",
		Help: "TXT values in the hub zone (each expires on its own; the sweep removes them).",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		mu.Lock()
		defer mu.Unlock()
		if n, err := count(ctx); err == nil {
			last = float64(n)
		}
		return last
	}))
}

// Upstream registers the upstream provider metrics and returns the hook
// hub.Config takes as UpstreamObserve: it counts each provider call in
// acmehub_upstream_calls_total{provider,engine,op,result} and its duration
// in acmehub_upstream_call_duration_seconds{provider,op}. The gauge
// acmehub_upstream_records{state} is read from count on each scrape (so
// changes by the admin CLI or another node show too), every state of
// states reported, 0 when absent; a failed count reports the last good
// one. Providers are catalogue codes, a bounded set.
func (m *Metrics) Upstream(states []string, count func(ctx context.Context) (map[string]int, error)) (
	observe func(provider, engine, op, result string, elapsed time.Duration),
) {
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "acmehub_upstream_calls_total",
		Help: "Calls to upstream DNS providers, by provider, engine (value, lego), operation (present, cleanup) and result (ok, error).",
	}, []string{"provider", "engine", "op", "result"})
	took := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "acmehub_upstream_call_duration_seconds",
		Help:    "Duration of calls to upstream DNS providers.",
		Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
	}, []string{"provider", "op"})
	m.reg.MustRegister(calls, took, &stateGauge{
		desc: prometheus.NewDesc("acmehub_upstream_records",
			"Values written into domains' own DNS, by state (removing: a removal failed and is retried; failed: given up, see GET /api/v1/upstream-records?state=failed).",
			[]string{"state"}, nil),
		states: states, count: count, last: map[string]int{},
	})
	return func(provider, engine, op, result string, elapsed time.Duration) {
		calls.WithLabelValues(provider, engine, op, result).Inc()
		took.WithLabelValues(provider, op).Observe(elapsed.Seconds())
	}
}

// stateGauge is a gauge per state, counted once per scrape.
type stateGauge struct {
	desc   *prometheus.Desc
	states []string
	count  func(ctx context.Context) (map[string]int, error)
	mu     sync.Mutex
	last   map[string]int
}

func (g *stateGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *stateGauge) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	g.mu.Lock()
	defer g.mu.Unlock()
	if counts, err := g.count(ctx); err == nil {
		g.last = counts
	}
	for _, s := range g.states {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(g.last[s]), s)
	}
}

// DNSUpdates registers acmehub_dns_updates_total{result} and returns the
// observer dnsupdate.Config takes (results are a bounded set: rcode and
// TSIG error names, "ratelimited").
func (m *Metrics) DNSUpdates() func(result string) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "acmehub_dns_updates_total",
		Help: "RFC 2136 UPDATE messages answered, by result (noerror, refused, notzone, badkey, badsig, ratelimited...).",
	}, []string{"result"})
	m.reg.MustRegister(c)
	return func(result string) { c.WithLabelValues(result).Inc() }
}
