package persistence

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"

	hermes "github.com/hermesd/hermesd"
)

// Images are kept apart from the items that carry them, once per content:
// a client that sends the same photo on every turn of a chain (stateless
// Responses and chat clients resend their whole history; agents attach a
// screenshot again) would otherwise store its megabytes again with each
// response. A node names each image by the SHA-256 of its bytes; the blobs
// bucket holds the bytes, blob_refs counts the references of every node
// to it, and item_blobs lists each node's references so that eviction
// releases them without decoding the node.
var (
	bucketBlobs     = []byte("blobs")      // sha256 → image bytes
	bucketBlobRefs  = []byte("blob_refs")  // sha256 → references (4 bytes)
	bucketItemBlobs = []byte("item_blobs") // response id → the sha256 of each image its node names, in order
)

// minBlobBytes is the smallest image kept apart: below it the reference
// and its bookkeeping cost about as much as the bytes.
const minBlobBytes = 1 << 10

// imageRef is an image a node keeps apart: part Part of item Item was a
// base64 data URL of media type Media whose bytes hash to Hash.
type imageRef struct {
	Item  int    `json:"i"`
	Part  int    `json:"p"`
	Media string `json:"m"`
	Hash  string `json:"h"` // hex
}

// blob is an image's bytes on their way into the blobs bucket.
type blob struct {
	hash [sha256.Size]byte
	data []byte
}

// splitImages takes the base64 data-URL images of n's items out into
// blobs and leaves references in n.Images. Items are shallow copies that
// may share their parts with the caller's messages, so a message that
// changes gets parts of its own. A data URL that would not come back byte
// for byte (not base64, line breaks, another alphabet) stays inline.
func splitImages(n *node) []blob {
	var out []blob
	for i := range n.Items {
		m := &n.Items[i]
		owned := false
		for j, p := range m.Parts {
			media, raw, ok := imageData(p)
			if !ok {
				continue
			}
			if !owned {
				m.Parts = append([]hermes.Part(nil), m.Parts...)
				owned = true
			}
			b := blob{hash: sha256.Sum256(raw), data: raw}
			m.Parts[j].ImageURL = ""
			n.Images = append(n.Images, imageRef{Item: i, Part: j, Media: media, Hash: hex.EncodeToString(b.hash[:])})
			out = append(out, b)
		}
	}
	return out
}

// imageData returns the media type and bytes of an image part given as a
// base64 data URL that re-encodes to exactly the same text.
func imageData(p hermes.Part) (media string, raw []byte, ok bool) {
	if p.Type != "image_url" || !strings.HasPrefix(p.ImageURL, "data:") {
		return "", nil, false
	}
	media, payload, ok := strings.Cut(p.ImageURL[len("data:"):], ";base64,")
	if !ok || len(payload) < base64.StdEncoding.EncodedLen(minBlobBytes) {
		return "", nil, false
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(payload)
	if err != nil || base64.StdEncoding.EncodedLen(len(raw)) != len(payload) {
		return "", nil, false // line breaks were skipped: it would not round-trip
	}
	return media, raw, true
}

// encodeNode encodes n with its images split out.
func encodeNode(n *node) ([]byte, []blob, error) {
	blobs := splitImages(n)
	rec, err := encode(n)
	return rec, blobs, err
}

// joinImages puts the images n references back, from blobs read by
// hash; a missing one means the store is damaged. Identical images share
// one string.
func joinImages(id string, n *node, blobs map[string][]byte, urls map[string]string) error {
	for _, ref := range n.Images {
		if ref.Item < 0 || ref.Item >= len(n.Items) || ref.Part < 0 || ref.Part >= len(n.Items[ref.Item].Parts) {
			return &hermes.Error{Code: hermes.EInternal,
				Message: fmt.Sprintf("stored items of response %q are corrupt: an image reference points at no part", id)}
		}
		key := ref.Media + "\x00" + ref.Hash
		url, ok := urls[key]
		if !ok {
			h, err := hex.DecodeString(ref.Hash)
			data, have := blobs[string(h)]
			if err != nil || !have {
				return &hermes.Error{Code: hermes.EInternal,
					Message: fmt.Sprintf("stored items of response %q are corrupt: image %.16s… is missing", id, ref.Hash)}
			}
			url = "data:" + ref.Media + ";base64," + base64.StdEncoding.EncodeToString(data)
			urls[key] = url
		}
		m := &n.Items[ref.Item]
		m.Parts[ref.Part].ImageURL = url
	}
	n.Images = nil
	return nil
}

// readBlobs copies into have the bytes of every image the node of id
// references, inside a read transaction.
func readBlobs(tx *bolt.Tx, id string, have map[string][]byte) {
	refs := tx.Bucket(bucketItemBlobs).Get([]byte(id))
	b := tx.Bucket(bucketBlobs)
	for len(refs) >= sha256.Size {
		h := string(refs[:sha256.Size])
		refs = refs[sha256.Size:]
		if _, ok := have[h]; !ok {
			if v := b.Get([]byte(h)); v != nil {
				have[h] = bytes.Clone(v)
			}
		}
	}
}

// putBlobs records that the node of id now references blobs (replacing
// what it referenced before): new references are counted before old ones
// are released, so an image both share is never deleted in between.
func (w *writer) putBlobs(id string, blobs []blob) error {
	old := bytes.Clone(w.itemBlobs.Get([]byte(id)))
	list := make([]byte, 0, len(blobs)*sha256.Size)
	for _, b := range blobs {
		n := blobCount(w.blobRefs, b.hash[:])
		if n == 0 {
			if err := w.blobs.Put(b.hash[:], b.data); err != nil {
				return err
			}
		}
		if err := w.blobRefs.Put(b.hash[:], binary.BigEndian.AppendUint32(nil, n+1)); err != nil {
			return err
		}
		list = append(list, b.hash[:]...)
	}
	if err := w.releaseBlobs(old); err != nil {
		return err
	}
	if len(list) == 0 {
		return w.itemBlobs.Delete([]byte(id))
	}
	return w.itemBlobs.Put([]byte(id), list)
}

// dropBlobs releases every image the node of id references; the node is
// being deleted.
func (w *writer) dropBlobs(id string) error {
	old := bytes.Clone(w.itemBlobs.Get([]byte(id)))
	if old == nil {
		return nil
	}
	if err := w.releaseBlobs(old); err != nil {
		return err
	}
	return w.itemBlobs.Delete([]byte(id))
}

// releaseBlobs drops one reference per hash in list; an image nothing
// references any more goes.
func (w *writer) releaseBlobs(list []byte) error {
	for ; len(list) >= sha256.Size; list = list[sha256.Size:] {
		h := list[:sha256.Size]
		switch n := blobCount(w.blobRefs, h); {
		case n > 1:
			if err := w.blobRefs.Put(h, binary.BigEndian.AppendUint32(nil, n-1)); err != nil {
				return err
			}
		default:
			if err := w.blobRefs.Delete(h); err != nil {
				return err
			}
			if err := w.blobs.Delete(h); err != nil {
				return err
			}
		}
	}
	return nil
}

func blobCount(b *bolt.Bucket, h []byte) uint32 {
	if v := b.Get(h); len(v) == 4 {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}
