package llm

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hermesd/hermesd/tooling"
)

// sealPrefix versions the sealed form, so a later key or cipher can be told
// apart. reasoningPrefix marks sealed reasoning; being also the
// authenticated data, it keeps a compaction's content from passing as
// reasoning and back.
const (
	sealPrefix      = "hcmp1."
	reasoningPrefix = "hrsn1."
)

// errSealed is every failure to open a sealed compaction: a client learns
// nothing about why.
var errSealed = errors.New("the compaction item's encrypted_content is not one this server sealed, or was altered")

// Sealer seals compaction summaries with AES-256-GCM, so a client holding a
// compaction item (OpenAI's opaque encrypted_content) can hand it back to a
// stateless request without being able to read or alter it. The key lives
// in a file of HERMES_HOME, so items stay readable across restarts.
type Sealer struct {
	aead cipher.AEAD
	// nonceKey derives reasoning nonces (SealReasoning).
	nonceKey []byte
}

// LoadSealer reads the key at path, creating it (32 random bytes, mode
// 0600) when the file does not exist.
func LoadSealer(path string) (*Sealer, error) {
	key, err := LoadKey(path)
	if err != nil {
		return nil, err
	}
	return NewSealer(key)
}

// LoadKey reads the sealing key at path, creating it (32 random bytes,
// mode 0600) when the file does not exist.
func LoadKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		r, err := os.OpenRoot(filepath.Dir(path))
		if err != nil {
			return nil, err
		}
		// Created whole or not at all: a crash mid-write used to leave a
		// short key that kept the server from starting.
		err = tooling.CreateFileAtomic(r, filepath.Base(path), key, 0o600)
		r.Close()
		if errors.Is(err, fs.ErrExist) {
			return LoadKey(path) // another process made it first
		}
		if err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("compaction key %s: %d bytes, want 32", path, len(key))
	}
	return key, nil
}

// NewSealer seals with key (32 bytes): the nodes of a cluster share one,
// so what one node sealed another opens.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("sealing key: %d bytes, want 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("hermesd reasoning nonce"))
	return &Sealer{aead: aead, nonceKey: mac.Sum(nil)}, nil
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
	return s.open(sealPrefix, enc)
}

func (s *Sealer) open(prefix, enc string) (string, error) {
	if len(enc) < len(prefix) || enc[:len(prefix)] != prefix {
		return "", errSealed
	}
	b, err := base64.RawURLEncoding.DecodeString(enc[len(prefix):])
	if err != nil || len(b) < s.aead.NonceSize() {
		return "", errSealed
	}
	plain, err := s.aead.Open(nil, b[:s.aead.NonceSize()], b[s.aead.NonceSize():], []byte(prefix))
	if err != nil {
		return "", errSealed
	}
	return string(plain), nil
}

// SealReasoning seals a model's reasoning for a Responses reasoning item's
// encrypted_content. Unlike Seal it is deterministic — the nonce is a MAC
// of the text — because the item is rendered again on every read (the
// stream, its final response, GET) and must read the same each time; it
// reveals only that two items hold the same reasoning.
func (s *Sealer) SealReasoning(reasoning string) string {
	mac := hmac.New(sha256.New, s.nonceKey)
	mac.Write([]byte(reasoning))
	nonce := mac.Sum(nil)[:s.aead.NonceSize()]
	out := make([]byte, len(nonce), len(nonce)+len(reasoning)+s.aead.Overhead())
	copy(out, nonce)
	return reasoningPrefix + base64.RawURLEncoding.EncodeToString(s.aead.Seal(out, nonce, []byte(reasoning), []byte(reasoningPrefix)))
}

// OpenReasoning returns the reasoning sealed in enc by SealReasoning, or an
// error when this key did not seal it or it was altered.
func (s *Sealer) OpenReasoning(enc string) (string, error) {
	return s.open(reasoningPrefix, enc)
}
