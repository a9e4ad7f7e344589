package route53

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/acmehub/acmehub/internal/upstream"
)

const (
	keyID  = "AKIDEXAMPLE"
	secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
	xmlns  = "https://route53.amazonaws.com/doc/2013-04-01/"
)

// fakeR53 serves the three Route 53 REST/XML operations the driver uses,
// checks each request's SigV4 signature, and applies change batches
// atomically (DELETE must match the set exactly, CREATE needs no set).
type fakeR53 struct {
	mu        sync.Mutex
	sets      map[string]xmlRRSet // name|type -> set
	changes   int
	conflict  int       // fail this many change batches with PriorRequestNotComplete
	reject    string    // fail every change batch with this InvalidChangeBatch message
	posts     int       // change batches received
	afterRead *xmlRRSet // stored right after the next read, as another writer would
}

type xmlRRSet struct {
	Name    string      `xml:"Name"`
	Type    string      `xml:"Type"`
	TTL     int64       `xml:"TTL"`
	Records []xmlRecord `xml:"ResourceRecords>ResourceRecord"`
}

type xmlRecord struct {
	Value string `xml:"Value"`
}

func txtSet(name string, ttl int64, values ...string) xmlRRSet {
	s := xmlRRSet{Name: name, Type: "TXT", TTL: ttl}
	for _, v := range values {
		s.Records = append(s.Records, xmlRecord{v})
	}
	return s
}

type xmlChangeRequest struct {
	Changes []struct {
		Action string   `xml:"Action"`
		Set    xmlRRSet `xml:"ResourceRecordSet"`
	} `xml:"ChangeBatch>Changes>Change"`
}

var signedBy = regexp.MustCompile(`Credential=([^/]+)/[0-9]+/([^/]+)/route53/`)

func (f *fakeR53) authentic(r *http.Request, body []byte) bool {
	m := signedBy.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil || m[1] != keyID {
		return false
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return false
	}
	// Sign the same request again with the real secret and compare.
	again := r.Clone(context.Background())
	again.Header.Del("Authorization")
	again.Header.Del("Accept-Encoding") // added by the transport after signing
	again.URL.Host, again.URL.Scheme = r.Host, "http"
	sum := sha256.Sum256(body)
	err = v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: keyID, SecretAccessKey: secret},
		again, hex.EncodeToString(sum[:]), "route53", m[2], at)
	return err == nil && again.Header.Get("Authorization") == r.Header.Get("Authorization")
}

func (f *fakeR53) fail(w http.ResponseWriter, status int, code, msg string) {
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0"?><ErrorResponse xmlns=%q><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>req-1</RequestId></ErrorResponse>`, xmlns, code, msg)
}

func (f *fakeR53) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if !f.authentic(r, body) {
		f.fail(w, http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/2013-04-01/hostedzonesbyname":
		// Real Route 53 lists zones from dnsname on, in label order; the
		// fake lists all, so the driver must pick by name and kind.
		fmt.Fprintf(w, `<ListHostedZonesByNameResponse xmlns=%q><HostedZones>`+
			`<HostedZone><Id>/hostedzone/ZPRIVATE</Id><Name>example.org.</Name><CallerReference>a</CallerReference><Config><PrivateZone>true</PrivateZone></Config></HostedZone>`+
			`<HostedZone><Id>/hostedzone/ZPUBLIC</Id><Name>example.org.</Name><CallerReference>b</CallerReference><Config><PrivateZone>false</PrivateZone></Config></HostedZone>`+
			`<HostedZone><Id>/hostedzone/ZOTHER</Id><Name>other.example.org.</Name><CallerReference>c</CallerReference><Config><PrivateZone>false</PrivateZone></Config></HostedZone>`+
			`</HostedZones><IsTruncated>false</IsTruncated><MaxItems>100</MaxItems></ListHostedZonesByNameResponse>`, xmlns)
	case r.URL.Path != "/2013-04-01/hostedzone/ZPUBLIC/rrset" && r.URL.Path != "/2013-04-01/hostedzone/ZPUBLIC/rrset/":
		f.fail(w, http.StatusNotFound, "NoSuchHostedZone", "No hosted zone found")
	case r.Method == http.MethodGet:
		start := r.URL.Query().Get("name") + "|" + r.URL.Query().Get("type")
		var keys []string
		for k := range f.sets {
			if k >= start {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		var out bytes.Buffer
		for _, k := range keys[:min(len(keys), 1)] {
			_ = xml.NewEncoder(&out).EncodeElement(f.sets[k], xml.StartElement{Name: xml.Name{Local: "ResourceRecordSet"}})
		}
		if f.afterRead != nil {
			f.sets[f.afterRead.Name+"|"+f.afterRead.Type] = *f.afterRead
			f.afterRead = nil
		}
		fmt.Fprintf(w, `<ListResourceRecordSetsResponse xmlns=%q><ResourceRecordSets>%s</ResourceRecordSets><IsTruncated>false</IsTruncated><MaxItems>1</MaxItems></ListResourceRecordSetsResponse>`, xmlns, out.String())
	case r.Method == http.MethodPost:
		f.posts++
		if f.reject != "" {
			f.fail(w, http.StatusBadRequest, "InvalidChangeBatch", f.reject)
			return
		}
		if f.conflict > 0 {
			f.conflict--
			f.fail(w, http.StatusBadRequest, "PriorRequestNotComplete", "The request was rejected because Route 53 was still processing a prior request.")
			return
		}
		var req xmlChangeRequest
		if err := xml.Unmarshal(body, &req); err != nil {
			f.fail(w, http.StatusBadRequest, "InvalidInput", "bad xml")
			return
		}
		next := map[string]xmlRRSet{}
		for k, v := range f.sets {
			next[k] = v
		}
		for _, c := range req.Changes {
			k := c.Set.Name + "|" + c.Set.Type
			have, ok := next[k]
			switch {
			case c.Action == "DELETE" && (!ok || fmt.Sprint(have) != fmt.Sprint(c.Set)):
				f.fail(w, http.StatusBadRequest, "InvalidChangeBatch", "Tried to delete resource record set but the values provided do not match the current values")
				return
			case c.Action == "DELETE":
				delete(next, k)
			case c.Action == "CREATE" && ok:
				f.fail(w, http.StatusBadRequest, "InvalidChangeBatch", "Tried to create resource record set but it already exists")
				return
			default:
				next[k] = c.Set
			}
		}
		f.sets = next
		f.changes++
		fmt.Fprintf(w, `<ChangeResourceRecordSetsResponse xmlns=%q><ChangeInfo><Id>/change/C%d</Id><Status>PENDING</Status><SubmittedAt>2025-01-01T00:00:00Z</SubmittedAt></ChangeInfo></ChangeResourceRecordSetsResponse>`, xmlns, f.changes)
	default:
		f.fail(w, http.StatusMethodNotAllowed, "InvalidInput", "method")
	}
}

// values returns the set at name as stored (quoted), sorted; nil if none.
func (f *fakeR53) values(name string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sets[name+"|TXT"]
	if !ok {
		return nil
	}
	var out []string
	for _, r := range s.Records {
		out = append(out, r.Value)
	}
	sort.Strings(out)
	return out
}

func start(t *testing.T, fields map[string]string) (*fakeR53, *Driver) {
	t.Helper()
	f := &fakeR53{sets: map[string]xmlRRSet{
		"www.example.org.|A": {Name: "www.example.org.", Type: "A", TTL: 300, Records: []xmlRecord{{"192.0.2.1"}}},
	}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	if fields == nil {
		fields = map[string]string{"AWS_ACCESS_KEY_ID": keyID, "AWS_SECRET_ACCESS_KEY": secret, "AWS_REGION": "eu-west-1"}
	}
	d, err := newDriver(fields, upstream.Options{}, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	d.retryWait = time.Millisecond
	return f, d
}

func TestAddRemoveKeepsOtherValue(t *testing.T) {
	f, d := start(t, nil)
	ctx := context.Background()
	const fqdn = "_acme-challenge.www.Example.org"
	const name = "_acme-challenge.www.example.org."
	for _, v := range []string{"value-one", "value-two", "value-one"} { // the repeat is a no-op
		if err := d.Add(ctx, fqdn, v, 60); err != nil {
			t.Fatalf("add %s: %v", v, err)
		}
	}
	if got := strings.Join(f.values(name), ","); got != `"value-one","value-two"` {
		t.Fatalf("after adds: %s", got)
	}
	if err := d.Remove(ctx, fqdn, "value-one"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.values(name), ","); got != `"value-two"` {
		t.Fatalf("after remove: %s, want only value-two", got)
	}
	if err := d.Remove(ctx, fqdn, "value-one"); err != nil {
		t.Fatalf("removing an absent value: %v", err)
	}
	if err := d.Remove(ctx, fqdn+".", "value-two"); err != nil {
		t.Fatal(err)
	}
	if got := f.values(name); got != nil {
		t.Fatalf("removing the last value left the set: %v", got)
	}
	if _, ok := f.sets["www.example.org.|A"]; !ok || f.changes != 4 {
		t.Fatalf("other set gone or unexpected writes (%d)", f.changes)
	}
}

func TestConcurrentAddsAndRetry(t *testing.T) {
	f, d := start(t, map[string]string{"AWS_ACCESS_KEY_ID": keyID, "AWS_SECRET_ACCESS_KEY": secret, "AWS_HOSTED_ZONE_ID": "/hostedzone/ZPUBLIC"})
	f.conflict = 2
	// A set someone else wrote stays; PriorRequestNotComplete is retried.
	f.sets["_acme-challenge.example.org.|TXT"] = txtSet("_acme-challenge.example.org.", 300, `"theirs"`)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() { errs <- d.Add(context.Background(), "_acme-challenge.example.org.", fmt.Sprintf("v%d", i), 60) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := f.values("_acme-challenge.example.org."); len(got) != 9 || got[0] != `"theirs"` {
		t.Fatalf("values: %v", got)
	}
	if f.sets["_acme-challenge.example.org.|TXT"].TTL != 300 {
		t.Fatal("shorter TTL replaced the set's TTL")
	}
}

func TestStaleSetRetries(t *testing.T) {
	f, d := start(t, nil)
	ctx := context.Background()
	if err := d.Add(ctx, "_acme-challenge.example.org.", "a", 60); err != nil {
		t.Fatal(err)
	}
	// Another writer changes the set between the driver's read and write:
	// the DELETE no longer matches, the batch fails, the driver re-reads.
	f.mu.Lock()
	f.afterRead = new(txtSet("_acme-challenge.example.org.", 60, `"a"`, `"b"`))
	f.mu.Unlock()
	if err := d.Remove(ctx, "_acme-challenge.example.org.", "a"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.values("_acme-challenge.example.org."), ","); got != `"b"` {
		t.Fatalf("values: %s", got)
	}
}

func TestWrongSecretIsClearAndSecretFree(t *testing.T) {
	const bad = "not-the-secret-at-all"
	_, d := start(t, map[string]string{"AWS_ACCESS_KEY_ID": keyID, "AWS_SECRET_ACCESS_KEY": bad})
	err := d.Add(context.Background(), "_acme-challenge.example.org.", "v", 60)
	if err == nil {
		t.Fatal("wrong secret accepted")
	}
	if msg := err.Error(); strings.Contains(msg, bad) || !strings.Contains(msg, "SignatureDoesNotMatch") || !strings.Contains(msg, "403") {
		t.Fatalf("error %q: want the API's code and status, without the secret", msg)
	}
}

func TestQuoteRoundTrip(t *testing.T) {
	for _, v := range []string{"", "plain", `with "quotes" and \ slash`, strings.Repeat("x", 600)} {
		got, err := unquote(quote(v))
		if err != nil || got != v {
			t.Errorf("%q: got %q, %v", v, got, err)
		}
	}
	if got, _ := unquote(`"a\072b"`); got != "a:b" {
		t.Errorf("octal escape: %q", got)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		fields map[string]string
		want   string
	}{
		{map[string]string{"AWS_SECRET_ACCESS_KEY": "s3cr3t"}, "AWS_ACCESS_KEY_ID"},
		{map[string]string{"AWS_ACCESS_KEY_ID": "id"}, "AWS_SECRET_ACCESS_KEY"},
		{map[string]string{"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "s3cr3t", "AWS_PROFILE": "p"}, "AWS_PROFILE"},
		{map[string]string{"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "s3cr3t", "AWS_PRIVATE_ZONE": "maybe"}, "AWS_PRIVATE_ZONE"},
	} {
		_, err := New(tc.fields, upstream.Options{})
		if !errors.Is(err, upstream.ErrConfig) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%v: got %v, want ErrConfig naming %s", tc.fields, err, tc.want)
		}
	}
}

// A permanent InvalidChangeBatch fails at once with Route 53's message;
// only a stale or raced batch is retried.
func TestPermanentChangeErrorNotRetried(t *testing.T) {
	f, d := start(t, nil)
	const msg = "RRSet of type TXT with DNS name _acme-challenge.example.org. is not permitted because a conflicting RRSet of type CNAME with the same DNS name already exists."
	f.mu.Lock()
	f.reject = msg
	f.mu.Unlock()
	err := d.Add(context.Background(), "_acme-challenge.example.org.", "v", 60)
	if err == nil || !strings.Contains(err.Error(), "conflicting RRSet of type CNAME") {
		t.Fatalf("got %v, want the provider's message", err)
	}
	f.mu.Lock()
	posts := f.posts
	f.reject = "Tried to delete resource record set [name='_acme-challenge.example.org.', type='TXT'] but it was not found"
	f.posts = 0
	f.mu.Unlock()
	if posts != 1 {
		t.Fatalf("permanent error tried %d times, want 1", posts)
	}
	// The stale-delete wording is retried up to the attempt limit.
	if err := d.Add(context.Background(), "_acme-challenge.example.org.", "v", 60); err == nil {
		t.Fatal("rejected batch reported as success")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.posts != attempts {
		t.Fatalf("stale delete tried %d times, want %d", f.posts, attempts)
	}
}
