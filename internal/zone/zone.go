// Package zone holds the hub zone's content model shared by the store (which
// persists it) and the DNS server (which answers from an in-memory View of it).
//
// The store is the source of truth. Every committed change carries the zone
// serial of the transaction that made it; serials are contiguous (each
// transaction that changes the zone bumps the serial by exactly one and
// writes at least one change), so a consumer can detect a gap and reload.
package zone

import (
	"context"
	"errors"
)

// Op is the kind of one zone change.
type Op uint8

const (
	// OpAddValue adds a TXT value at Name (or refreshes its TTL).
	OpAddValue Op = 1
	// OpRemoveValue removes one TXT value at Name.
	OpRemoveValue Op = 2
	// OpAddName makes Name exist without values (a delegation label):
	// queries for it answer NODATA instead of NXDOMAIN.
	OpAddName Op = 3
	// OpRemoveName removes such a name again (its values, if any, are
	// removed by their own OpRemoveValue changes).
	OpRemoveName Op = 4
)

func (o Op) String() string {
	switch o {
	case OpAddValue:
		return "add_value"
	case OpRemoveValue:
		return "remove_value"
	case OpAddName:
		return "add_name"
	case OpRemoveName:
		return "remove_name"
	}
	return "unknown"
}

// Change is one row of the change journal.
// Name is always a lower-case fqdn (trailing dot) inside the hub zone.
type Change struct {
	Serial int64
	Op     Op
	Name   string
	Value  string // OpAddValue, OpRemoveValue
	TTL    uint32 // OpAddValue
}

// Value is one live TXT value of the zone.
type Value struct {
	Name  string // lower-case fqdn
	Value string
	TTL   uint32
}

// Snapshot is the whole zone content at one serial.
type Snapshot struct {
	Serial int64
	Values []Value
	Names  []string // names that exist without values (delegation labels)
}

// ErrGap reports that the changes after a serial are no longer (or not yet)
// available, so the consumer must load a full Snapshot instead.
var ErrGap = errors.New("zone: journal gap")

// Source is what a View is kept current from; the store implements it.
// Implementations are safe for concurrent use and honour ctx.
type Source interface {
	// Serial returns the latest committed serial. It is cheap: the follower
	// calls it about every 250 ms to notice other processes' writes.
	Serial(ctx context.Context) (int64, error)
	// Snapshot returns the complete zone content at one consistent serial.
	Snapshot(ctx context.Context) (Snapshot, error)
	// ChangesSince returns the changes of the serials after since, in serial
	// order, whole transactions only (never half of one serial's changes),
	// at most about maxSerials serials. It returns ErrGap (wrapped) when the
	// journal no longer holds serial since+1 while the store is past it.
	ChangesSince(ctx context.Context, since int64, maxSerials int) ([]Change, error)
}
