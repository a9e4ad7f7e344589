package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/acmehub/acmehub/internal/acmetest"
)

// rfc2136Args lift the hub's per-key UPDATE rate limit (120 at once, then
// one per 500 ms) out of the way of TestLoadProtocols: one load client
// sends hundreds of UPDATEs a second with its key.
var rfc2136Args = []string{"--update-rate-burst", "1048576", "--update-rate-per", "1us"}

// rfc2136Writer sends RFC 2136 UPDATEs signed with TSIG to the hub's
// public DNS listener, as a client that follows the _acme-challenge CNAME
// does: the zone is the hub zone and the name the delegation's target.
// Each load client has its own key (as each certbot or lego host would)
// and its own delegation. A present is one UPDATE adding one TXT value,
// a clean-up one UPDATE deleting that value (class NONE), as certbot
// sends them; lego's add also deletes the RRset first, which here would
// be the same single write.
type rfc2136Writer struct {
	addr    string // the hub's public DNS listener
	zone    string
	targets []string // per client: the delegation's name in the hub zone
	keys    []rfc2136Key
	clients []*dns.Client // per client: its key's secret
}

type rfc2136Key struct{ Name, Secret string }

// newRFC2136Writer creates, as the hub's admin, one hmac-sha256 TSIG key
// per target for principal through the admin API. net is "udp" (lego's
// transport: a new socket per message) or "tcp" (certbot's: a new
// connection per message).
func newRFC2136Writer(t *testing.T, h *acmetest.Hub, client *http.Client, principal, net string, targets []string) rfc2136Writer {
	t.Helper()
	w := rfc2136Writer{addr: h.DNSAddr, zone: h.Zone, targets: targets}
	for range targets {
		body, _ := json.Marshal(map[string]string{"principal": principal, "algorithm": "hmac-sha256", "title": "loadtest"})
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.APIURL+"/api/v1/tsig-keys", bytes.NewReader(body))
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
		var k rfc2136Key
		if resp.StatusCode != http.StatusCreated || json.Unmarshal(raw, &k) != nil || k.Name == "" || k.Secret == "" {
			t.Fatalf("create a TSIG key for %s: %s", principal, resp.Status) // the body holds the secret
		}
		w.keys = append(w.keys, k)
		w.clients = append(w.clients, &dns.Client{Net: net, Timeout: requestTimeout, TsigSecret: map[string]string{k.Name: k.Secret}})
	}
	return w
}

// update sends one UPDATE at client's target, adding value or (remove)
// deleting it, and wants NOERROR signed by the hub.
func (w rfc2136Writer) update(ctx context.Context, client int, value string, remove bool) error {
	rr := []dns.RR{&dns.TXT{
		Hdr: dns.RR_Header{Name: w.targets[client], Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
		Txt: []string{value},
	}}
	m := new(dns.Msg).SetUpdate(w.zone)
	if remove {
		m.Remove(rr)
	} else {
		m.Insert(rr)
	}
	m.SetTsig(w.keys[client].Name, dns.HmacSHA256, 300, time.Now().Unix())
	// The client checks the reply's TSIG when there is one.
	r, _, err := w.clients[client].ExchangeContext(ctx, m, w.addr)
	switch {
	case err != nil:
		return err
	case r.Rcode != dns.RcodeSuccess:
		return fmt.Errorf("UPDATE %s: %s", w.targets[client], dns.RcodeToString[r.Rcode])
	case r.IsTsig() == nil:
		return fmt.Errorf("UPDATE %s: NOERROR without a TSIG signature", w.targets[client])
	}
	return nil
}

func (w rfc2136Writer) present(ctx context.Context, client int, _, value string) error {
	return w.update(ctx, client, value, false)
}

// cleanup reports one removal: the reply does not say how many values
// went; checkRFC2136 and the check after the load look at the answers.
func (w rfc2136Writer) cleanup(ctx context.Context, client int, _, value string) (int, error) {
	if err := w.update(ctx, client, value, true); err != nil {
		return 0, err
	}
	return 1, nil
}

func (rfc2136Writer) rotate() int { return 0 }

// checkRFC2136 makes sure, before anything is timed, that w's add and
// delete really change what the hub answers at every target: a NOERROR
// that changed nothing would otherwise be timed as a write.
func checkRFC2136(t *testing.T, w rfc2136Writer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for k, target := range w.targets {
		if err := w.present(ctx, k, "", "probe"); err != nil {
			t.Fatalf("rfc2136 probe: %v", err)
		}
		if got := txtTCP(t, w.addr, target); !slices.Equal(got, []string{"probe"}) {
			t.Fatalf("rfc2136 probe: %s answers %q after the add, want [probe]", target, got)
		}
		if _, err := w.cleanup(ctx, k, "", "probe"); err != nil {
			t.Fatalf("rfc2136 probe: %v", err)
		}
		if got := txtTCP(t, w.addr, target); len(got) != 0 {
			t.Fatalf("rfc2136 probe: %s answers %q after the delete, want nothing", target, got)
		}
	}
}

// rfc2136Leftovers says which targets still hold values after a load in
// which every add was followed by its delete.
func rfc2136Leftovers(t *testing.T, w rfc2136Writer) error {
	t.Helper()
	var errs []error
	for _, target := range w.targets {
		if got := txtTCP(t, w.addr, target); len(got) != 0 {
			errs = append(errs, fmt.Errorf("%s still answers %d values after the load", target, len(got)))
		}
	}
	return errors.Join(errs...)
}
