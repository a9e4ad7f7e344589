// Package route53 is a value-level upstream driver for Amazon Route 53.
// Route 53 keeps all TXT values at a name in one record set, so adding or
// removing one value rewrites the set; the rewrite is a single change batch
// that deletes the exact set read and creates the new one, which Route 53
// applies atomically or rejects if the set changed meanwhile (then the
// driver reads again and retries).
package route53

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/aws/smithy-go"

	"github.com/acmehub/acmehub/internal/upstream"
)

// attempts bounds the read-modify-write retries on a concurrent change.
const attempts = 5

var _ upstream.Driver = (*Driver)(nil)

// Driver writes TXT values through the Route 53 API.
type Driver struct {
	client      *route53.Client
	timeout     time.Duration
	zoneID      string // AWS_HOSTED_ZONE_ID, or "" to look it up
	privateZone bool
	retryWait   time.Duration

	mu    sync.Mutex
	zones map[string]string    // fqdn -> hosted zone id
	names map[string]*nameLock // serialises this driver's writes per name
}

type nameLock struct {
	sync.Mutex
	users int
}

// New builds a driver from lego's route53 fields: AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY (required; AWS_SESSION_TOKEN if set), AWS_REGION
// (default us-east-1, Route 53 is global), AWS_HOSTED_ZONE_ID (optional;
// else the hosted zone is found by name) and AWS_PRIVATE_ZONE ("true" to
// use private zones only). Profiles, shared files and role assumption are
// not supported: the credential holds its keys.
func New(fields map[string]string, opts upstream.Options) (upstream.Driver, error) {
	return newDriver(fields, opts, "")
}

// newDriver lets tests point the client at a fake endpoint.
func newDriver(fields map[string]string, opts upstream.Options, endpoint string) (*Driver, error) {
	get := func(n string) string { return strings.TrimSpace(fields[n]) }
	for _, n := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		if get(n) == "" {
			return nil, fmt.Errorf("%w: %s is missing", upstream.ErrConfig, n)
		}
	}
	for _, n := range []string{"AWS_PROFILE", "AWS_ASSUME_ROLE_ARN", "AWS_SHARED_CREDENTIALS_FILE"} {
		if get(n) != "" {
			return nil, fmt.Errorf("%w: %s is not supported by the value-level driver", upstream.ErrConfig, n)
		}
	}
	region := get("AWS_REGION")
	if region == "" {
		region = "us-east-1"
	}
	var private bool
	switch strings.ToLower(get("AWS_PRIVATE_ZONE")) {
	case "", "false", "0":
	case "true", "1":
		private = true
	default:
		return nil, fmt.Errorf("%w: AWS_PRIVATE_ZONE must be true or false", upstream.ErrConfig)
	}

	cfg := aws.Config{
		Region:      region,
		Credentials: credentials.NewStaticCredentialsProvider(get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY"), get("AWS_SESSION_TOKEN")),
	}
	client := route53.NewFromConfig(cfg, func(o *route53.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	d := &Driver{
		client:      client,
		timeout:     opts.Timeout,
		zoneID:      strings.TrimPrefix(get("AWS_HOSTED_ZONE_ID"), "/hostedzone/"),
		privateZone: private,
		retryWait:   time.Second,
		zones:       map[string]string{},
		names:       map[string]*nameLock{},
	}
	if d.timeout <= 0 {
		d.timeout = 30 * time.Second
	}
	return d, nil
}

// Add puts value into the TXT set at fqdn, keeping the values there.
func (d *Driver) Add(ctx context.Context, fqdn, value string, ttl uint32) error {
	return d.update(ctx, "add", fqdn, func(values []string) ([]string, bool) {
		for _, v := range values {
			if v == value {
				return nil, false
			}
		}
		return append(values, value), true
	}, int64(ttl))
}

// Remove takes value out of the TXT set at fqdn, deleting the set when it
// was the last value.
func (d *Driver) Remove(ctx context.Context, fqdn, value string) error {
	return d.update(ctx, "remove", fqdn, func(values []string) ([]string, bool) {
		out := values[:0:0]
		for _, v := range values {
			if v != value {
				out = append(out, v)
			}
		}
		return out, len(out) != len(values)
	}, 0)
}

// update reads the set at fqdn, applies edit, and writes the result in one
// atomic batch, retrying when another writer changed the set first.
func (d *Driver) update(ctx context.Context, op, fqdn string, edit func([]string) ([]string, bool), ttl int64) error {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	fqdn = strings.ToLower(strings.TrimSuffix(fqdn, ".")) + "."
	unlock := d.lock(fqdn)
	defer unlock()

	zone, err := d.zone(ctx, fqdn)
	if err != nil {
		return err
	}
	for try := 1; ; try++ {
		old, err := d.read(ctx, zone, fqdn)
		if err != nil {
			return fmt.Errorf("route53: %s TXT %s: read set: %w", op, fqdn, err)
		}
		var values []string
		if old != nil {
			values, err = txtValues(old)
			if err != nil {
				return fmt.Errorf("route53: %s TXT %s: %w", op, fqdn, err)
			}
		}
		values, changed := edit(values)
		if !changed {
			return nil
		}
		var changes []types.Change
		if old != nil {
			changes = append(changes, types.Change{Action: types.ChangeActionDelete, ResourceRecordSet: old})
			if ttl == 0 || old.TTL != nil && *old.TTL > ttl {
				ttl = aws.ToInt64(old.TTL) // keep the set's TTL unless ours is longer
			}
		}
		if len(values) > 0 {
			recs := make([]types.ResourceRecord, len(values))
			for i, v := range values {
				recs[i] = types.ResourceRecord{Value: aws.String(quote(v))}
			}
			changes = append(changes, types.Change{Action: types.ChangeActionCreate, ResourceRecordSet: &types.ResourceRecordSet{
				Name: aws.String(fqdn), Type: types.RRTypeTxt, TTL: aws.Int64(max(ttl, 1)), ResourceRecords: recs,
			}})
		}
		_, err = d.client.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{
			HostedZoneId: aws.String(zone),
			ChangeBatch:  &types.ChangeBatch{Comment: aws.String("acmehub " + op), Changes: changes},
		})
		if err == nil {
			return nil
		}
		if try >= attempts || !conflict(err) {
			return fmt.Errorf("route53: %s TXT %s: %w", op, fqdn, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("route53: %s TXT %s: %w", op, fqdn, err)
		case <-time.After(d.retryWait * time.Duration(try)):
		}
	}
}

// conflict reports whether err is transient, so a fresh read and write
// may succeed: a change still being applied, throttling, or a batch
// rejected because the set changed between our read and write. Any other
// InvalidChangeBatch (a conflicting CNAME, a bad value) is permanent.
func conflict(err error) bool {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode() {
	case "PriorRequestNotComplete", "Throttling", "ThrottlingException":
		return true
	case "InvalidChangeBatch":
		msg := apiErr.ErrorMessage()
		// Route 53's wording for a stale DELETE, or a CREATE racing
		// another writer's ("Tried to create resource record set [...]
		// but it already exists"; not the CNAME "conflicting RRSet" one).
		return strings.Contains(msg, "but it was not found") ||
			strings.Contains(msg, "do not match the current values") ||
			strings.Contains(msg, "Tried to create resource record set") && strings.Contains(msg, "but it already exists")
	}
	return false
}

// read returns the TXT set at fqdn, or nil when there is none.
func (d *Driver) read(ctx context.Context, zone, fqdn string) (*types.ResourceRecordSet, error) {
	out, err := d.client.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{
		HostedZoneId:    aws.String(zone),
		StartRecordName: aws.String(fqdn),
		StartRecordType: types.RRTypeTxt,
		MaxItems:        aws.Int32(1),
	})
	if err != nil {
		return nil, err
	}
	for i := range out.ResourceRecordSets {
		rs := &out.ResourceRecordSets[i]
		if rs.Type == types.RRTypeTxt && strings.EqualFold(aws.ToString(rs.Name), fqdn) && rs.SetIdentifier == nil {
			return rs, nil
		}
	}
	return nil, nil
}

// zone returns the hosted zone for fqdn: the configured one, or the
// closest enclosing zone of the wanted kind (public unless AWS_PRIVATE_ZONE).
func (d *Driver) zone(ctx context.Context, fqdn string) (string, error) {
	if d.zoneID != "" {
		return d.zoneID, nil
	}
	d.mu.Lock()
	id, ok := d.zones[fqdn]
	d.mu.Unlock()
	if ok {
		return id, nil
	}
	labels := strings.Split(strings.TrimSuffix(fqdn, "."), ".")
	for i := 0; i < len(labels)-1; i++ {
		candidate := strings.Join(labels[i:], ".") + "."
		out, err := d.client.ListHostedZonesByName(ctx, &route53.ListHostedZonesByNameInput{DNSName: aws.String(candidate)})
		if err != nil {
			return "", fmt.Errorf("route53: find hosted zone for %s: %w", fqdn, err)
		}
		for _, z := range out.HostedZones {
			isPrivate := z.Config != nil && z.Config.PrivateZone
			if strings.EqualFold(aws.ToString(z.Name), candidate) && isPrivate == d.privateZone {
				id := strings.TrimPrefix(aws.ToString(z.Id), "/hostedzone/")
				d.mu.Lock()
				d.zones[fqdn] = id
				d.mu.Unlock()
				return id, nil
			}
		}
	}
	return "", fmt.Errorf("route53: no hosted zone found for %s in this account", fqdn)
}

// lock serialises this driver's writes to one name, so the hub's own
// concurrent calls (a name and its wildcard) do not race each other.
func (d *Driver) lock(fqdn string) func() {
	d.mu.Lock()
	l := d.names[fqdn]
	if l == nil {
		l = &nameLock{}
		d.names[fqdn] = l
	}
	l.users++
	d.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		d.mu.Lock()
		if l.users--; l.users == 0 {
			delete(d.names, fqdn)
		}
		d.mu.Unlock()
	}
}

// quote renders a TXT value in Route 53's zone-file form: quoted strings of
// at most 255 characters each, with '"' and '\' escaped.
func quote(v string) string {
	var parts []string
	for len(v) > 255 {
		parts = append(parts, v[:255])
		v = v[255:]
	}
	parts = append(parts, v)
	for i, p := range parts {
		p = strings.ReplaceAll(p, `\`, `\\`)
		parts[i] = `"` + strings.ReplaceAll(p, `"`, `\"`) + `"`
	}
	return strings.Join(parts, " ")
}

// txtValues decodes each record of a TXT set back into its value.
func txtValues(rs *types.ResourceRecordSet) ([]string, error) {
	out := make([]string, 0, len(rs.ResourceRecords))
	for _, r := range rs.ResourceRecords {
		v, err := unquote(aws.ToString(r.Value))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// unquote joins the quoted strings of one TXT record (the inverse of quote;
// Route 53 also writes \ddd octal escapes).
func unquote(s string) (string, error) {
	var b strings.Builder
	s = strings.TrimSpace(s)
	for s != "" {
		if s[0] != '"' {
			return "", fmt.Errorf("unexpected TXT record form %q", s)
		}
		i := 1
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] != '\\' || i+1 >= len(s) {
				b.WriteByte(s[i])
				continue
			}
			if i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
				b.WriteByte((s[i+1]-'0')*64 + (s[i+2]-'0')*8 + s[i+3] - '0')
				i += 3
				continue
			}
			i++
			b.WriteByte(s[i])
		}
		if i >= len(s) {
			return "", fmt.Errorf("unterminated TXT string")
		}
		s = strings.TrimSpace(s[i+1:])
	}
	return b.String(), nil
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
