package legoworker

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	stdlog "log"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/challenge/dns01"
	legolog "github.com/go-acme/lego/v4/log"
)

// The worker's environment: the credential's fields plus these.
const (
	envProvider  = "ACMEHUB_LEGO_PROVIDER"      // canonical provider code
	envResolvers = "ACMEHUB_LEGO_RESOLVERS"     // comma-separated host:port list
	envNoCNAME   = "LEGO_DISABLE_CNAME_SUPPORT" // always "true"
)

// controlVar reports whether name is one the pool sets itself, which a
// credential field must not override.
func controlVar(name string) bool {
	return name == envProvider || name == envResolvers || name == envNoCNAME
}

// The wire protocol between pool and worker: newline-delimited JSON. The
// worker first writes one hello line, then answers each request line with
// one reply line, in order.
type hello struct {
	Ready bool   `json:"ready,omitempty"`
	Error string `json:"error,omitempty"`
}

type request struct {
	ID      uint64 `json:"id"`
	Op      string `json:"op"` // "present" or "cleanup"
	Domain  string `json:"domain"`
	KeyAuth string `json:"key_auth"`
}

type reply struct {
	ID    uint64 `json:"id"`
	Error string `json:"error"`
}

// maxLine bounds one protocol line in either direction.
const maxLine = 1 << 20

// testProviders lets this package's tests register fake providers in the
// worker (the test binary is the worker); nil otherwise.
var testProviders map[string]func() (challenge.Provider, error)

func buildProvider(code string) (challenge.Provider, error) {
	if f, ok := testProviders[code]; ok {
		return f()
	}
	if !compiled(code) {
		return nil, fmt.Errorf("provider %q is not in this build", code)
	}
	return newProvider(code)
}

// workerMain is Main: the worker process.
func workerMain() int {
	// stdout carries the protocol alone: lego logs (and anything else that
	// prints) go to stderr, which the pool logs at debug level.
	pout, err := protocolOut()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lego-worker: setting up stdout:", err)
		return 1
	}
	out := bufio.NewWriter(pout)
	legolog.Logger = stdlog.New(os.Stderr, "", 0)

	scrub := newScrubber(credentialValues(os.Environ()))
	send := func(v any) bool {
		b, _ := json.Marshal(v)           // plain structs of strings: cannot fail
		_, _ = out.Write(append(b, '\n')) // Flush reports the error
		return out.Flush() == nil
	}

	if rs := os.Getenv(envResolvers); rs != "" {
		// The returned option ignores its argument: it sets lego's
		// package-level resolver list, so lego's zone and SOA lookups ask
		// the hub's resolvers instead of /etc/resolv.conf or public ones.
		_ = dns01.AddRecursiveNameservers(strings.Split(rs, ","))(nil)
	}
	prov, err := buildProvider(os.Getenv(envProvider))
	if err != nil {
		send(hello{Error: scrub(err.Error())})
		return 1
	}
	if !send(hello{Ready: true}) {
		return 1
	}

	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 0, 4096), maxLine)
	// One request at a time: not every provider is safe for concurrent
	// use, and providers that replace the whole TXT set must not race.
	for in.Scan() {
		var req request
		var rep reply
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			rep.Error = "bad request line"
		} else {
			rep.ID = req.ID
			if err := call(prov, req); err != nil {
				rep.Error = scrub(err.Error())
			}
		}
		if !send(rep) {
			return 1
		}
	}
	// stdin closed (the pool stops this worker) or unreadable.
	if in.Err() != nil {
		fmt.Fprintln(os.Stderr, "lego-worker: reading requests:", in.Err())
		return 1
	}
	return 0
}

// call runs one request; a provider panic becomes an error rather than
// killing the worker mid-protocol.
func call(prov challenge.Provider, req request) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("provider panicked: %v", r)
		}
	}()
	if req.Domain == "" || req.KeyAuth == "" {
		return fmt.Errorf("%s: domain and key authorization are required", req.Op)
	}
	// A key authorization is token "." thumbprint; lego passes the token
	// separately, and a few providers (httpreq RAW) send it on.
	token, _, _ := strings.Cut(req.KeyAuth, ".")
	switch req.Op {
	case "present":
		return prov.Present(req.Domain, token, req.KeyAuth)
	case "cleanup":
		return prov.CleanUp(req.Domain, token, req.KeyAuth)
	default:
		return fmt.Errorf("unknown op %q", req.Op)
	}
}

// credentialValues returns the values of env (NAME=value entries) that
// come from the credential, i.e. all but the pool's control variables.
func credentialValues(env []string) []string {
	var vals []string
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if !controlVar(k) {
			vals = append(vals, v)
		}
	}
	return vals
}

// minSecret is the shortest field value scrubbed from texts: shorter ones
// ("RAW", "1") would redact random fragments and protect nothing.
const minSecret = 4

// newScrubber returns a function replacing every occurrence of any of the
// values (of at least minSecret bytes), as given or in the encodings
// providers echo them in (URL query and path escaping, base64), with
// "[redacted]", longest first so a value containing another is removed
// whole.
func newScrubber(values []string) func(string) string {
	var pairs []string
	seen := map[string]bool{}
	for _, v := range values {
		if len(v) < minSecret {
			continue
		}
		for _, form := range []string{v, url.QueryEscape(v), url.PathEscape(v),
			base64.StdEncoding.EncodeToString([]byte(v)), base64.RawURLEncoding.EncodeToString([]byte(v))} {
			if !seen[form] {
				seen[form] = true
				pairs = append(pairs, form)
			}
		}
	}
	if len(pairs) == 0 {
		return func(s string) string { return s }
	}
	// strings.Replacer prefers the earliest match, then the first listed
	// pair: list longer values first.
	slices.SortFunc(pairs, func(a, b string) int { return len(b) - len(a) })
	args := make([]string, 0, 2*len(pairs))
	for _, v := range pairs {
		args = append(args, v, "[redacted]")
	}
	r := strings.NewReplacer(args...)
	return r.Replace
}
