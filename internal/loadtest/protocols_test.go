package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/acmehub/acmehub/internal/acmetest"
	"github.com/acmehub/acmehub/internal/secret"
)

// acmeDNSRotate is how many values each acme-dns client cycles through at
// its name: acme-dns clients never clean up, so after the first round every
// update refreshes a live value (still a committed zone change: serial,
// journal and audit row), and the name stays under the hub's 32-value cap.
const acmeDNSRotate = 30

// writer writes challenge values through one of the hub's protocols for
// the load tests. client is the load client's index (its account, for
// acme-dns).
type writer interface {
	present(ctx context.Context, client int, dom, value string) error
	// cleanup removes the value present wrote and says how many went.
	cleanup(ctx context.Context, client int, dom, value string) (int, error)
	// rotate is 0 for protocols with clean-up; otherwise the number of
	// values a client cycles through per name, without clean-up.
	rotate() int
}

// nativeWriter is the native challenge API.
type nativeWriter struct{ api *acmetest.NativeProvider }

func (w nativeWriter) present(ctx context.Context, _ int, dom, value string) error {
	_, err := w.api.Publish(ctx, acmetest.PresentRequest{Identifier: dom, Value: value})
	return err
}

func (w nativeWriter) cleanup(ctx context.Context, _ int, dom, value string) (int, error) {
	return w.api.Remove(ctx, dom, value)
}

func (nativeWriter) rotate() int { return 0 }

// httpreqWriter is lego's httpreq protocol in its default mode, as lego
// sends it: Basic auth, {"fqdn","value"} with the _acme-challenge name.
type httpreqWriter struct {
	client *http.Client
	base   string // the hub's API URL + the httpreq prefix
	tok    secret.Token
}

func (w httpreqWriter) post(ctx context.Context, path, dom, value string) error {
	body, _ := json.Marshal(map[string]string{"fqdn": "_acme-challenge." + dom + ".", "value": value})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(w.tok.ClientID, w.tok.Secret)
	return send(w.client, req, http.StatusOK)
}

func (w httpreqWriter) present(ctx context.Context, _ int, dom, value string) error {
	return w.post(ctx, "/present", dom, value)
}

// cleanup reports one removal: httpreq's reply does not say how many
// values went, so the count is checked by the native load only.
func (w httpreqWriter) cleanup(ctx context.Context, _ int, dom, value string) (int, error) {
	if err := w.post(ctx, "/cleanup", dom, value); err != nil {
		return 0, err
	}
	return 1, nil
}

func (httpreqWriter) rotate() int { return 0 }

// acmeDNSAccount is what /update needs of an account.
type acmeDNSAccount struct {
	Username  string `json:"username"`
	Password  string `json:"password"`
	Subdomain string `json:"subdomain"`
}

// acmeDNSWriter is the acme-dns /update call, one account per client.
type acmeDNSWriter struct {
	client   *http.Client
	base     string // the hub's API URL (acme-dns API at the root)
	accounts []acmeDNSAccount
}

func (w acmeDNSWriter) present(ctx context.Context, client int, _, value string) error {
	a := w.accounts[client]
	body, _ := json.Marshal(map[string]string{"subdomain": a.Subdomain, "txt": value})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.base+"/update", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("X-Api-User", a.Username)
	req.Header.Set("X-Api-Key", a.Password)
	return send(w.client, req, http.StatusOK)
}

func (acmeDNSWriter) cleanup(context.Context, int, string, string) (int, error) { return 0, nil }

func (acmeDNSWriter) rotate() int { return acmeDNSRotate }

// newACMEDNSWriter creates, as the hub's admin, one acme-dns account per
// domain through the admin API.
func newACMEDNSWriter(t *testing.T, h *acmetest.Hub, client *http.Client, doms []string) acmeDNSWriter {
	t.Helper()
	w := acmeDNSWriter{client: client, base: h.APIURL}
	for _, d := range doms {
		body, _ := json.Marshal(map[string]string{"domain": d})
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.APIURL+"/api/v1/acme-dns/accounts", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+h.Token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		var a acmeDNSAccount
		if resp.StatusCode != http.StatusCreated || json.Unmarshal(raw, &a) != nil || a.Password == "" {
			t.Fatalf("create acme-dns account for %s: %s %s", d, resp.Status, raw)
		}
		w.accounts = append(w.accounts, a)
	}
	return w
}

// send does req and checks the answer's status, draining and closing it.
func send(c *http.Client, req *http.Request, want int) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != want {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(raw)))
	}
	return nil
}

// loadHTTPClient keeps up to conns connections to the hub open.
func loadHTTPClient(t *testing.T, conns int) *http.Client {
	t.Helper()
	tr := &http.Transport{Proxy: nil, MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, IdleConnTimeout: time.Minute}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: requestTimeout}
}

// TestLoadProtocols measures writes per second through the client
// protocols against the real binary (SQLite file, synchronous FULL) with
// 1, 4 and 16 clients for presentPhase each, the native API measured the
// same way in the same run as the reference: present + clean-up pairs for
// the native API, lego's httpreq and RFC 2136 UPDATEs signed with TSIG
// (over UDP as lego sends them, over TCP as certbot does; the per-key
// UPDATE rate limit lifted), single /update calls for acme-dns (whose
// clients never clean up). Errors fail the test; the figures and the
// 1,500/s target at 16 clients are reported, not asserted.
func TestLoadProtocols(t *testing.T) {
	requireBench(t)
	acmetest.Binary(t)
	h := acmetest.StartHub(t, acmetest.HubConfig{Zone: origin, DataDir: t.TempDir(), StartTimeout: 2 * time.Minute, Args: rfc2136Args})
	tok := h.Consumer(t, "bench", writeRule)
	api := apiClient(t, h, tok, 32)
	client := loadHTTPClient(t, 32)
	t.Logf("acmehub up in %v, api %s (pid %d), %d CPUs shared by the hub and the clients, loadavg %s",
		h.Startup.Round(time.Millisecond), h.APIURL, h.PID(), runtime.NumCPU(), loadAvg())

	type run struct {
		protocol string
		unit     string
		st       writeStats
	}
	var runs []run
	for _, clients := range []int{1, 4, 16} {
		for _, p := range []struct{ name, unit string }{
			{"native", "pairs"}, {"httpreq", "pairs"}, {"acme-dns", "updates"},
			{"rfc2136-udp", "pairs"}, {"rfc2136-tcp", "pairs"},
		} {
			doms := domains(fmt.Sprintf("%s-c%d-", p.name, clients), clients)
			targets := warm(t, api, doms)
			var w writer
			switch p.name {
			case "native":
				w = nativeWriter{api}
			case "httpreq":
				w = httpreqWriter{client: client, base: h.APIURL + "/httpreq", tok: tok}
			case "acme-dns":
				w = newACMEDNSWriter(t, h, client, doms)
			case "rfc2136-udp", "rfc2136-tcp":
				rw := newRFC2136Writer(t, h, client, "bench", strings.TrimPrefix(p.name, "rfc2136-"), targets)
				checkRFC2136(t, rw)
				w = rw
			}
			ctx, cancel := context.WithTimeout(t.Context(), presentPhase)
			st := writeLoad(ctx, t, w, doms, 0, h.PID())
			cancel()
			if st.errs > 0 {
				t.Errorf("%s, %d clients: %d failed writes; first: %v", p.name, clients, st.errs, st.firstErr)
			}
			if rw, ok := w.(rfc2136Writer); ok {
				if err := rfc2136Leftovers(t, rw); err != nil {
					t.Errorf("%s, %d clients: %v", p.name, clients, err)
				}
			}
			runs = append(runs, run{p.name, p.unit, st})
		}
	}
	if exited, err := h.Exited(); exited {
		t.Fatalf("acmehub exited during the load (%v):\n%s", err, h.Logs())
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "protocol\tclients\tcounted\tper second\tvs native\tpresent p50 ms\tp99 ms\thub CPU cores\terrors\t\n")
	native := map[int]float64{}
	for _, r := range runs {
		if r.protocol == "native" {
			native[r.st.clients] = r.st.rate()
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t\n", r.protocol, r.st.clients, r.unit, r.st.rate(),
			r.st.rate()/native[r.st.clients], ms(pct(r.st.present, 50)), ms(pct(r.st.present, 99)),
			r.st.hubCPU.Seconds()/r.st.elapsed.Seconds(), r.st.errs)
	}
	_ = tw.Flush()
	var verdicts []string
	for _, r := range runs {
		if r.st.clients == 16 && r.protocol != "native" {
			v := "MET"
			if r.st.rate() < presentTarget {
				v = "NOT MET"
			}
			verdicts = append(verdicts, fmt.Sprintf("%s %s (%.0f %s/s)", r.protocol, v, r.st.rate(), r.unit))
		}
	}
	t.Logf("writes through the client protocols (pairs: present + clean-up, 2 committed writes; updates: 1 committed write each), synchronous FULL:\n%starget >= %d/s at 16 clients: %s",
		b.String(), presentTarget, strings.Join(verdicts, "; "))
}
