package acmetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"
)

// TestPropagationTwoNameservers runs two hub processes on one database as
// the zone's two nameservers: ns1 (hub 1, which takes the writes) and ns2
// (hub 2, which polls the database only every hour: it serves the zone as
// it loaded it at start). A present through hub 1 answers 202 naming ns2
// when its wait ends, and the challenge's status says ns2 lags. A second
// wait for the value runs while hub 2 restarts on the same DNS port, and
// so loads the value: the wait answers 201, and the status says both
// serve it. Nothing depends on when a poll happens.
func TestPropagationTwoNameservers(t *testing.T) {
	if testing.Short() {
		t.Skip("internal/acmetest: two-process propagation test skipped in -short mode")
	}
	binary(t, acmehubPackage)
	dns1, dns2 := freeDNSAddr(t), freeDNSAddr(t)
	// Both processes publish the same NS set and check it the same way:
	// each nameserver name is mapped to its process's DNS port.
	common := []string{
		"--ns", "ns1.acme.test=127.0.0.1", "--ns", "ns2.acme.test=127.0.0.2",
		"--check-nameserver-addr", "ns1.acme.test=" + dns1,
		"--check-nameserver-addr", "ns2.acme.test=" + dns2,
		"--propagation-max-wait", "20s",
	}
	hub1 := StartHub(t, HubConfig{Args: append([]string{"--dns-listen", dns1}, common...)})
	// (dns-listen is a list: each hub also listens on StartHub's port 0.)
	hub2Cfg := HubConfig{DataDir: hub1.DataDir, Args: append([]string{"--dns-listen", dns2, "--poll-interval", "1h"}, common...)}
	hub2 := StartHub(t, hub2Cfg)
	tok := hub1.Consumer(t, "shop", "*.example.test")
	c := &nativeClient{t: t, base: hub1.APIURL, token: tok.String()}
	ns1, ns2 := "ns1.acme.test.", "ns2.acme.test."

	lag := c.present("example.test", "value", "1s", http.StatusAccepted)
	if p := lag.Propagation; p == nil || p.Everywhere || !slices.Equal(p.Lagging, []string{ns2}) {
		t.Fatalf("wait 1s: propagation %+v, want ns2 lagging", p)
	}
	checkServers(t, "wait 1s", lag.Propagation, map[string]bool{ns1: true, ns2: false})
	st := c.status(lag.ID)
	if st.Status != "published" || st.Propagation == nil || !slices.Equal(st.Propagation.Lagging, []string{ns2}) {
		t.Fatalf("status: %+v, want published with ns2 lagging", st)
	}
	checkServers(t, "status", st.Propagation, map[string]bool{ns1: true, ns2: false})

	// Wait for the value again while hub 2 restarts; it reads the zone,
	// the value included, when it starts.
	waited := make(chan waitedPresent, 1)
	go func() { waited <- c.presentAsync("example.test", "value", "15s") }()
	hub2.Stop(t)
	StartHub(t, hub2Cfg)
	w := <-waited
	again := w.out
	if w.err != nil || w.status != http.StatusCreated || again.Propagation == nil || !again.Propagation.Everywhere || len(again.Propagation.Lagging) != 0 {
		t.Fatalf("wait 15s across hub 2's restart: %d %v %+v", w.status, w.err, again.Propagation)
	}
	st = c.status(again.ID)
	checkServers(t, "status after hub 2 restarted", st.Propagation, map[string]bool{ns1: true, ns2: true})
	if !st.Propagation.Everywhere {
		t.Errorf("status after hub 2 restarted: %+v", st.Propagation)
	}
}

// freeDNSAddr returns a 127.0.0.1 address free for UDP and TCP now, for a
// hub whose address other processes must know before it starts.
func freeDNSAddr(t *testing.T) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}

// propagationWire is the propagation object of the native API.
type propagationWire struct {
	Everywhere bool      `json:"everywhere"`
	CheckedAt  time.Time `json:"checked_at"`
	Lagging    []string  `json:"lagging"`
	Servers    []struct {
		Server  string `json:"server"`
		Addr    string `json:"addr"`
		Serial  uint32 `json:"serial"`
		Current bool   `json:"current"`
		Serves  bool   `json:"serves"`
		Error   string `json:"error"`
	} `json:"servers"`
}

type challengeWire struct {
	ID          string           `json:"id"`
	Status      string           `json:"status"`
	Propagation *propagationWire `json:"propagation"`
}

// checkServers compares which servers serve the value (want, by name) and
// that the serving ones are current and the others are not.
func checkServers(t *testing.T, what string, p *propagationWire, want map[string]bool) {
	t.Helper()
	if p == nil {
		t.Fatalf("%s: no propagation object", what)
	}
	got := map[string]bool{}
	for _, s := range p.Servers {
		got[s.Server] = s.Serves
		if s.Current != s.Serves || s.Serial == 0 || s.Error != "" {
			t.Errorf("%s: %s: %+v", what, s.Server, s)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s: servers %v, want %v", what, got, want)
	}
	for name, serves := range want {
		if s, ok := got[name]; !ok || s != serves {
			t.Errorf("%s: %s serves %v (listed %v), want %v", what, name, s, ok, serves)
		}
	}
}

// nativeClient calls the native challenge API.
type nativeClient struct {
	t     *testing.T
	base  string
	token string
}

func (c *nativeClient) present(identifier, value, wait string, want int) challengeWire {
	c.t.Helper()
	body, _ := json.Marshal(map[string]string{"identifier": identifier, "value": value, "wait": wait})
	return c.call(http.MethodPost, "/api/v1/challenges", body, want)
}

// waitedPresent is what presentAsync got.
type waitedPresent struct {
	status int
	out    challengeWire
	err    error
}

// presentAsync is present for another goroutine than the test's: it
// reports failures instead of ending the test.
func (c *nativeClient) presentAsync(identifier, value, wait string) waitedPresent {
	body, _ := json.Marshal(map[string]string{"identifier": identifier, "value": value, "wait": wait})
	req, err := http.NewRequestWithContext(c.t.Context(), http.MethodPost, c.base+"/api/v1/challenges", bytes.NewReader(body))
	if err != nil {
		return waitedPresent{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return waitedPresent{err: err}
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	w := waitedPresent{status: resp.StatusCode}
	if err := json.Unmarshal(raw, &w.out); err != nil {
		w.err = fmt.Errorf("%w: %s", err, raw)
	}
	return w
}

func (c *nativeClient) status(id string) challengeWire {
	c.t.Helper()
	return c.call(http.MethodGet, "/api/v1/challenges/"+id, nil, http.StatusOK)
}

func (c *nativeClient) call(method, path string, body []byte, want int) challengeWire {
	c.t.Helper()
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		c.t.Fatalf("%s %s: %d %s, want %s", method, path, resp.StatusCode, raw, strconv.Itoa(want))
	}
	var out challengeWire
	if err := json.Unmarshal(raw, &out); err != nil {
		c.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
	}
	return out
}
