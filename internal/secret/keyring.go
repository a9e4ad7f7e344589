package secret

import (
	"bufio"
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
)

// KeySize is the size in bytes of a master key in the key file.
const KeySize = 32

// maxKeyFileSize bounds what LoadKeyFile reads: a key line is ~50 bytes,
// so anything larger is the wrong file.
const maxKeyFileSize = 64 << 10

// maxKeyIDLen keeps the key id that every hash and sealed blob carries short.
const maxKeyIDLen = 32

// ErrBadKeyFile reports a key file that cannot be parsed or is unsafe to use.
var ErrBadKeyFile = errors.New("bad key file")

// HKDF info labels, one per purpose. Changing one invalidates everything
// derived from it, so they are fixed forever; add new ones instead.
const (
	purposeHash  = "acmehub/v1/token-hash"
	purposeCheck = "acmehub/v1/key-check"
	purposeSeal  = "acmehub/v1/seal"
)

// Key is one master key of a key file.
type Key struct {
	ID    string // 1-32 of [a-z0-9_-], starting with a letter or digit
	Bytes [KeySize]byte
}

// GenerateKey returns a new random key with the given id.
func GenerateKey(id string) (Key, error) {
	if !validKeyID(id) {
		return Key{}, fmt.Errorf("generate key %q: invalid key id", id)
	}
	k := Key{ID: id}
	if _, err := rand.Read(k.Bytes[:]); err != nil {
		return Key{}, fmt.Errorf("generate key %q: %w", id, err)
	}
	return k, nil
}

// Keyring holds the master keys of a key file and their derived subkeys.
// The first key is current: it hashes and seals new values; the others only
// verify and open old ones, which is what makes rotation possible.
//
// A Keyring is immutable and safe for concurrent use.
type Keyring struct {
	keys  []*keyEntry // keys[0] is current
	byID  map[string]*keyEntry
	dummy []byte // hash of a random secret: see DummyHash
}

type keyEntry struct {
	id       string
	hdr      []byte // version-less header: len(id) | id, see hash.go and seal.go
	master   [KeySize]byte
	hashKey  []byte
	checkKey []byte
	aead     cipher.AEAD
}

// NewKeyring returns a keyring of the given keys; the first is current.
func NewKeyring(keys ...Key) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("new keyring: no keys")
	}
	kr := &Keyring{byID: make(map[string]*keyEntry, len(keys))}
	for _, k := range keys {
		if !validKeyID(k.ID) {
			return nil, fmt.Errorf("new keyring: key %q: invalid key id", k.ID)
		}
		if _, dup := kr.byID[k.ID]; dup {
			return nil, fmt.Errorf("new keyring: key %q: duplicate key id", k.ID)
		}
		// An all-zero key is a placeholder someone forgot to replace.
		var zero [KeySize]byte
		if subtle.ConstantTimeCompare(k.Bytes[:], zero[:]) == 1 {
			return nil, fmt.Errorf("new keyring: key %q: all zero", k.ID)
		}
		e, err := newKeyEntry(k)
		if err != nil {
			return nil, fmt.Errorf("new keyring: key %q: %w", k.ID, err)
		}
		kr.keys = append(kr.keys, e)
		kr.byID[k.ID] = e
	}
	var d [secretBytes]byte
	if _, err := rand.Read(d[:]); err != nil {
		return nil, fmt.Errorf("new keyring: %w", err)
	}
	kr.dummy = kr.HashSecret(string(d[:]))
	return kr, nil
}

func newKeyEntry(k Key) (*keyEntry, error) {
	if len(k.ID) > maxKeyIDLen {
		return nil, errors.New("key id too long")
	}
	e := &keyEntry{id: k.ID, master: k.Bytes}
	e.hdr = append([]byte{byte(len(k.ID))}, k.ID...) //nolint:gosec // len <= maxKeyIDLen, checked above
	var err error
	if e.hashKey, err = derive(k.Bytes[:], purposeHash); err != nil {
		return nil, err
	}
	if e.checkKey, err = derive(k.Bytes[:], purposeCheck); err != nil {
		return nil, err
	}
	sealKey, err := derive(k.Bytes[:], purposeSeal)
	if err != nil {
		return nil, err
	}
	if e.aead, err = chacha20poly1305.NewX(sealKey); err != nil {
		return nil, err
	}
	return e, nil
}

// derive returns the 32-byte subkey of master for purpose (HKDF-SHA256).
func derive(master []byte, purpose string) ([]byte, error) {
	out := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, master, nil, []byte(purpose)), out); err != nil {
		return nil, fmt.Errorf("derive %s key: %w", purpose, err)
	}
	return out, nil
}

// CurrentID returns the id of the current key.
func (kr *Keyring) CurrentID() string { return kr.keys[0].id }

// IDs returns the key ids, current first.
func (kr *Keyring) IDs() []string {
	ids := make([]string, len(kr.keys))
	for i, e := range kr.keys {
		ids[i] = e.id
	}
	return ids
}

// Rotate returns a keyring with a new random current key in front of all of
// kr's keys. The new id is "k<n+1>" where n is the highest "k<n>" id held.
func (kr *Keyring) Rotate() (*Keyring, error) {
	n := 0
	for _, e := range kr.keys {
		if d, ok := strings.CutPrefix(e.id, "k"); ok {
			if v, err := strconv.Atoi(d); err == nil && v > n {
				n = v
			}
		}
	}
	k, err := GenerateKey("k" + strconv.Itoa(n+1))
	if err != nil {
		return nil, fmt.Errorf("rotate keys: %w", err)
	}
	keys := []Key{k}
	for _, e := range kr.keys {
		keys = append(keys, Key{ID: e.id, Bytes: e.master})
	}
	return NewKeyring(keys...)
}

// String describes the keyring without key material, so that printing one
// by mistake (fmt prints a *struct's fields) leaks nothing.
func (kr *Keyring) String() string {
	return fmt.Sprintf("secret.Keyring{current: %s, keys: %d}", kr.CurrentID(), len(kr.keys))
}

// GoString is String, for %#v.
func (kr *Keyring) GoString() string { return kr.String() }

// LogValue is String, for slog.
func (kr *Keyring) LogValue() slog.Value { return slog.StringValue(kr.String()) }

func validKeyID(id string) bool {
	if id == "" || len(id) > maxKeyIDLen || id[0] == '-' || id[0] == '_' {
		return false
	}
	for _, c := range []byte(id) {
		if !isKeyIDChar(c) {
			return false
		}
	}
	return true
}

func isKeyIDChar(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// Key file format: UTF-8 text, one key per line as "<id> <base64 of 32
// bytes>" (standard alphabet, padded); blank lines and lines starting with
// '#' are ignored. The first key is current.
const keyFileHeader = `# acmehub key file. Keep it secret (mode 0600) and back it up apart from the
# database: without it, token hashes and sealed credentials are useless.
# One key per line, "<id> <base64 of 32 bytes>". The first key is current;
# later keys only verify and open values made before a rotation.
`

// LoadKeyFile reads a key file. It refuses a file that is not a regular
// file, or that is group-writable or readable or writable by others
// (mode & 0o027 != 0), because the keys would then not be secret.
func LoadKeyFile(path string) (*Keyring, error) {
	f, err := os.Open(filepath.Clean(path))
	if err != nil {
		return nil, fmt.Errorf("load key file %s: %w", path, err)
	}
	// Read-only: a close error cannot lose data.
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load key file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("load key file %s: %w: not a regular file", path, ErrBadKeyFile)
	}
	// Windows has no such mode bits; its ACLs are the operator's business.
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o027 != 0 {
		return nil, fmt.Errorf("load key file %s: %w: mode %04o lets others read or change it; use 0600 or 0640",
			path, ErrBadKeyFile, fi.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("load key file %s: %w", path, err)
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("load key file %s: %w: larger than %d bytes", path, ErrBadKeyFile, maxKeyFileSize)
	}
	kr, err := ParseKeyFile(data)
	if err != nil {
		return nil, fmt.Errorf("load key file %s: %w", path, err)
	}
	return kr, nil
}

// ParseKeyFile parses the contents of a key file. Errors name the line but
// never quote key material.
func ParseKeyFile(data []byte) (*Keyring, error) {
	var keys []Key
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("%w: line %d: want \"<id> <base64 key>\"", ErrBadKeyFile, n)
		}
		if !validKeyID(fields[0]) {
			return nil, fmt.Errorf("%w: line %d: invalid key id", ErrBadKeyFile, n)
		}
		b, err := base64.StdEncoding.Strict().DecodeString(fields[1])
		if err != nil || len(b) != KeySize {
			return nil, fmt.Errorf("%w: line %d: key %q: want %d bytes in base64", ErrBadKeyFile, n, fields[0], KeySize)
		}
		k := Key{ID: fields[0]}
		copy(k.Bytes[:], b)
		clear(b)
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKeyFile, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no keys", ErrBadKeyFile)
	}
	kr, err := NewKeyring(keys...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKeyFile, err)
	}
	return kr, nil
}

// marshal returns the key file contents for kr. Unexported because the
// result is key material; CreateKeyFile and ReplaceKeyFile write it.
func (kr *Keyring) marshal() []byte {
	var b bytes.Buffer
	b.WriteString(keyFileHeader)
	for _, e := range kr.keys {
		b.WriteString(e.id)
		b.WriteByte(' ')
		b.WriteString(base64.StdEncoding.EncodeToString(e.master[:]))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// CreateKeyFile creates a new key file at path holding one random key "k1"
// and returns its keyring. It never overwrites: an existing file is an
// error wrapping fs.ErrExist, since replacing a key file makes every token
// and sealed credential in the database useless.
func CreateKeyFile(path string) (*Keyring, error) {
	k, err := GenerateKey("k1")
	if err != nil {
		return nil, fmt.Errorf("create key file %s: %w", path, err)
	}
	kr, err := NewKeyring(k)
	if err != nil {
		return nil, fmt.Errorf("create key file %s: %w", path, err)
	}
	f, err := os.OpenFile(filepath.Clean(path), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create key file %s: %w", path, err)
	}
	if err := writeSync(f, kr.marshal()); err != nil {
		// Leave no half-written key file behind to be loaded later.
		_ = os.Remove(path)
		return nil, fmt.Errorf("create key file %s: %w", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("create key file %s: %w", path, err)
	}
	return kr, nil
}

// ReplaceKeyFile atomically replaces the key file at path with kr's keys
// (write a temporary file, fsync, rename), for key rotation. The file must
// already exist: creating one is CreateKeyFile's job.
func ReplaceKeyFile(path string, kr *Keyring) error {
	old, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("replace key file %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	// CreateTemp makes the file 0600; the old file's mode (and owner) are
	// kept, so a group the operator let read it still can.
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("replace key file %s: %w", path, err)
	}
	tmp := f.Name()
	if err := keepOwnerAndMode(f, old); err != nil {
		_ = f.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("replace key file %s: %w", path, err)
	}
	if err := writeSync(f, kr.marshal()); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("replace key file %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("replace key file %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("replace key file %s: %w", path, err)
	}
	return nil
}

// keepOwnerAndMode gives f the permission bits of old, and its owner when
// that is possible (as root; elsewhere best effort, ignored).
func keepOwnerAndMode(f *os.File, old fs.FileInfo) error {
	if err := f.Chmod(old.Mode().Perm()); err != nil {
		return err
	}
	keepOwner(f, old)
	return nil
}

// writeSync writes data, fsyncs and closes f, so the key is on disk before
// anything is sealed with it.
func writeSync(f *os.File, data []byte) error {
	_, werr := f.Write(data)
	clear(data)
	serr := f.Sync()
	cerr := f.Close()
	return errors.Join(werr, serr, cerr)
}

// syncDir makes a new directory entry durable. Some platforms and file
// systems cannot fsync a directory; that only weakens crash safety.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(filepath.Clean(dir))
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) && !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	return nil
}
