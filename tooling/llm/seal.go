package llm

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// sealPrefix versions the sealed form, so a later key or cipher can be told
// apart.
const sealPrefix = "hcmp1."

// errSealed is every failure to open a sealed compaction: a client learns
// nothing about why.
var errSealed = errors.New("the compaction item's encrypted_content is not one this server sealed, or was altered")

// Sealer seals compaction summaries with AES-256-GCM, so a client holding a
// compaction item (OpenAI's opaque encrypted_content) can hand it back to a
// stateless request without being able to read or alter it. The key lives
// in a file of HERMES_HOME, so items stay readable across restarts.
type Sealer struct{ aead cipher.AEAD }

// LoadSealer reads the key at path, creating it (32 random bytes, mode
// 0600) when the file does not exist.
func LoadSealer(path string) (*Sealer, error) {
	key, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return LoadSealer(path) // another process made it first
		}
		if err != nil {
			return nil, err
		}
		if _, err := f.Write(key); err != nil {
			f.Close()
			return nil, err
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("compaction key %s: %d bytes, want 32", path, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal returns summary sealed: the prefix, then base64 of nonce and
// ciphertext.
func (s *Sealer) Seal(summary string) string {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(summary)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return sealPrefix + base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(summary), []byte(sealPrefix)))
}

// Open returns the summary sealed in enc, or an error when enc was not
// sealed with this key or was altered.
func (s *Sealer) Open(enc string) (string, error) {
	if len(enc) < len(sealPrefix) || enc[:len(sealPrefix)] != sealPrefix {
		return "", errSealed
	}
	b, err := base64.RawURLEncoding.DecodeString(enc[len(sealPrefix):])
	if err != nil || len(b) < s.aead.NonceSize() {
		return "", errSealed
	}
	plain, err := s.aead.Open(nil, b[:s.aead.NonceSize()], b[s.aead.NonceSize():], []byte(sealPrefix))
	if err != nil {
		return "", errSealed
	}
	return string(plain), nil
}
