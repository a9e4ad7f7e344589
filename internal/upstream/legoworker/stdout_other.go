//go:build !unix

package legoworker

import "os"

// protocolOut keeps stdout for the protocol; only writes through os.Stdout
// are moved to stderr here (see stdout_unix.go).
func protocolOut() (*os.File, error) {
	out := os.Stdout
	os.Stdout = os.Stderr
	return out, nil
}
