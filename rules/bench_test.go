package rules

import (
	"fmt"
	"testing"
)

// benchCands returns n configs like a large hub's: mostly one exact name
// plus its wildcard, some wildcard-only, and one catch-all.
func benchCands(b *testing.B, n int) []Candidate {
	b.Helper()
	cs := make([]Candidate, 0, n)
	for i := range n - 1 {
		var r string
		switch i % 3 {
		case 0:
			r = fmt.Sprintf("customer%d.example.org; *.customer%d.example.org", i, i)
		case 1:
			r = fmt.Sprintf("*.team%d.example.net", i)
		default:
			r = fmt.Sprintf("host%d.example.com, api.host%d.example.com", i, i)
		}
		cs = append(cs, Candidate{ID: fmt.Sprint(i), Rule: MustParse(r)})
	}
	return append(cs, Candidate{ID: "default", Rule: MustParse("*")})
}

var benchBases = []struct{ name, base string }{
	{"exact", "customer501.example.org"},
	{"wildcard-base", "team502.example.net"},
	{"wildcard-child", "www.customer501.example.org"},
	{"catch-all", "unknown.example.org"},
	{"unnormalised", "WWW.Customer501.example.org."},
	{"unicode", "www.bücher.example"},
}

func BenchmarkSetChoose(b *testing.B) {
	set, err := NewSet(benchCands(b, 1000))
	if err != nil {
		b.Fatal(err)
	}
	for _, bb := range benchBases {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, ok := set.Choose(bb.base); !ok {
					b.Fatal("no match")
				}
			}
		})
	}
}

func BenchmarkChooseLinear(b *testing.B) {
	cs := benchCands(b, 1000)
	for _, bb := range benchBases[:4] {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, ok := Choose(bb.base, cs); !ok {
					b.Fatal("no match")
				}
			}
		})
	}
}

func BenchmarkNewSet(b *testing.B) {
	cs := benchCands(b, 1000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewSet(cs); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("example.org; *.example.org, bücher.example"); err != nil {
			b.Fatal(err)
		}
	}
}
