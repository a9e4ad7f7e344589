package hub

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/acmehub/acmehub/internal/dnscheck"
)

// Propagation is where a challenge value is served: per address of every
// hub nameserver, its SOA serial, whether that is at or past the write's,
// and whether it answers the value.
type Propagation = dnscheck.PropagationResult

// Bounds of propagation checks.
const (
	// defaultMaxWait is Config.MaxWait when it is 0.
	defaultMaxWait = 2 * time.Minute
	// checkTimeout bounds one check without a wait (a status read): long
	// enough for a slow server's SOA and TXT, short enough for an API call.
	checkTimeout = 3 * time.Second
)

// PropagationEnabled reports whether the hub can check propagation: it has
// a DNS check client and knows its nameservers.
func (s *Service) PropagationEnabled() bool {
	return s.propagationClient() != nil && len(s.cfg.Nameservers) > 0
}

func (s *Service) propagationClient() *dnscheck.Client {
	if s.cfg.PropagationCheck != nil {
		return s.cfg.PropagationCheck
	}
	return s.cfg.DNSCheck
}

// PropagationMaxWait is the longest wait WaitPropagation accepts.
func (s *Service) PropagationMaxWait() time.Duration {
	if s.cfg.MaxWait <= 0 {
		return defaultMaxWait
	}
	return s.cfg.MaxWait
}

// Propagation is Status plus where the value is served; authorised like
// Status. An absent value fails with ErrNotFound, and a hub without
// propagation checks with ErrUnsupported.
func (s *Service) Propagation(ctx context.Context, g Grant, id string) (Challenge, Propagation, error) {
	ch, err := s.Status(ctx, g, id)
	if err != nil {
		return ch, Propagation{}, err
	}
	if !ch.Live {
		return ch, Propagation{}, fmt.Errorf("%w: the challenge value is not published", ErrNotFound)
	}
	p, err := s.WaitPropagation(ctx, ch, 0)
	return ch, p, err
}

// WaitPropagation checks every hub nameserver for a challenge that an
// authorised Present or Status returned, again every 250 ms until all serve
// its value or wait ends, and returns the last result (Everywhere false
// names the laggards). wait <= 0 means one check, bounded by a few
// seconds; a wait beyond PropagationMaxWait is refused with ErrInvalid.
//
// Nameservers are compared with the serial of the write (Challenge.Serial)
// so that one still serving an older copy of the same value is not taken
// for current; without it (ids from before serials were kept), with the
// zone's serial now, which is stricter.
func (s *Service) WaitPropagation(ctx context.Context, ch Challenge, wait time.Duration) (Propagation, error) {
	if !s.PropagationEnabled() {
		return Propagation{}, fmt.Errorf("%w: propagation checks are off on this hub", ErrUnsupported)
	}
	if wait > s.PropagationMaxWait() {
		return Propagation{}, fmt.Errorf("%w: wait %s is longer than the hub's maximum %s", ErrInvalid, wait, s.PropagationMaxWait())
	}
	serial := ch.Serial
	if serial <= 0 {
		var err error
		if serial, err = s.db.Serial(ctx); err != nil {
			return Propagation{}, fmt.Errorf("propagation of %s: %w", ch.Target, err)
		}
	}
	// The zone publishes the counter mod 2^32 (RFC 1982 compares it).
	minSerial := uint32(serial) //nolint:gosec // intentional truncation: the SOA serial is the counter mod 2^32
	if wait <= 0 {
		cctx, cancel := context.WithTimeout(ctx, checkTimeout)
		defer cancel()
		return s.propagationClient().CheckPropagation(cctx, s.cfg.Zone, s.cfg.Nameservers, ch.Target, ch.Value, minSerial), nil
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	return s.propagationClient().WaitPropagation(wctx, s.cfg.Zone, s.cfg.Nameservers, ch.Target, ch.Value, minSerial, 0), nil
}

// Lagging lists the nameserver addresses of p that do not serve the value
// yet, as "name (host:port): why", for people to read.
func Lagging(p Propagation) []string {
	var out []string
	for _, sv := range p.Servers {
		if sv.Serves {
			continue
		}
		why := fmt.Sprintf("serial %d, not current yet", sv.Serial)
		switch {
		case sv.Err != "":
			why = sv.Err
		case sv.Current:
			why = fmt.Sprintf("serial %d, value not answered", sv.Serial)
		}
		who := sv.Server
		if sv.Addr != "" {
			who += " (" + sv.Addr + ")"
		}
		out = append(out, who+": "+why)
	}
	return slices.Clip(out)
}
