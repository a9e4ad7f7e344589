// Package rules parses and normalises domain match rules, matches them
// against the base name of an ACME identifier, and chooses the managed
// challenge config for a name. It does no I/O and imports nothing from the
// project.
//
// # Rules
//
// A rule is a list of patterns separated by ';' or ',' (see Parse):
// example.org matches that name; *.example.org matches example.org and
// names exactly one label below it (www.example.org, not a.b.example.org);
// * alone matches every name and is the only catch-all. A wildcard never
// crosses a label boundary: evilexample.org matches neither example.org nor
// *.example.org. A rule without patterns is invalid, as are other uses of
// '*' (*example.org, a.*.example.org, **.example.org, *., *.*.example.org).
// Patterns equal after normalisation are kept once.
//
// # Names
//
// Names are normalised the same way in rules, identifiers and lookups:
// lower case, one trailing dot dropped, Unicode mapped to A-labels with the
// UTS #46 lookup mapping (non-transitional, so ß stays ß; case and
// full-width forms folded, ignorable code points such as a soft hyphen
// dropped) and full IDNA2008 label validation including the Bidi rule.
// xn-- labels are decoded, validated and re-encoded, so bücher.example and
// XN--BCHER-KVA.example are the same name and invalid punycode (xn--zz) is
// refused. Other labels with "--" in positions 3-4 are refused, as Let's
// Encrypt does. Labels are 1-63 bytes of letters, digits and inner
// hyphens; names are at most 253 bytes, and identifiers at most 237 so
// that their challenge name fits. Underscores are refused: every name here
// is a host a certificate can be issued for, not a record name
// (BaseFromChallengeName takes _acme-challenge.<base>). IP addresses, and
// names whose last label is all digits, are refused: DNS-01 cannot
// validate IP identifiers.
//
// # Base names
//
// Rules are evaluated on the base name of an identifier (see
// NormalizeIdentifier): *.www.example.org has base www.example.org. A
// DNS-01 value at _acme-challenge.<base> (ChallengeName) validates both
// <base> and *.<base>, so no rule can grant one without the other: a rule
// www.example.org lets *.www.example.org validate too. The same holds for
// the domain restrictions of role assignments, which use the rule syntax
// and are checked with Rule.Allows on the base name.
//
// # Choosing a config
//
// For base name b, a pattern matches with a Rank: 1 for the pattern b, 2
// for *.b, 3 for *.p when b is one label below p, 4 for *. A rule's rank is
// the best (lowest) of its patterns', and the config with the lowest rank
// wins (Choose, or Set.Choose for many lookups).
//
// # Ties
//
// Configs A and B conflict if there is a base name n that both match with
// bestRank_A(n) == bestRank_B(n): neither could be chosen for n, so saving
// the second is refused (Conflicts, NewSet). This holds exactly when A and
// B share a pattern (after normalisation):
//
//   - both have x: they tie on x at rank 1;
//   - both have *.q: they tie on q at rank 2 unless one has q exactly, and
//     otherwise on a child c of q that neither names as c or *.c, at rank 3
//     (names are unbounded in number, rules are finite);
//   - both have *: they tie at rank 4 on a name no other pattern matches.
//
// Conversely a tie at rank 1 needs x in both, at rank 2 or 3 the same *.q in
// both, at rank 4 * in both. So example.org in A and *.example.org in B do
// not conflict (ranks 1 and 2 on example.org, B alone below it), nor do
// *.example.org and *.www.example.org. The one gap is the 253-byte limit:
// a *.q with q near it has few children, and two rules that both have *.q
// and q and name all of its children would not really tie; Conflicts still
// reports them (with no example Name).
package rules
