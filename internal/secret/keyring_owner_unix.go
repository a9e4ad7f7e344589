//go:build unix

package secret

import (
	"io/fs"
	"os"
	"syscall"
)

// keepOwner gives f old's owner and group when running as root (only root
// may give a file away); best effort: the mode already guards the key.
func keepOwner(f *os.File, old fs.FileInfo) {
	if st, ok := old.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
		_ = f.Chown(int(st.Uid), int(st.Gid))
	}
}
