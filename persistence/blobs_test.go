package persistence

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	hermes "github.com/hermesd/hermesd"
)

// photo is n bytes that do not compress, as a data URL.
func photo(seed uint64, n int) (string, []byte) {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(b), b
}

// withImages is a user message showing the images urls.
func withImages(text string, urls ...string) hermes.Message {
	m := hermes.Message{Role: hermes.RoleUser, Content: text, Parts: []hermes.Part{{Type: "text", Text: text}}}
	for _, u := range urls {
		m.Parts = append(m.Parts, hermes.Part{Type: "image_url", ImageURL: u, Detail: "high"})
	}
	return m
}

// imageStats counts what the store holds for images: blobs, the bytes of
// blobs, the references of each, and the bytes of every item record.
type imageStats struct {
	blobs, blobBytes, itemBytes int
	refs                        map[[sha256.Size]byte]uint32
	itemLists                   int
}

func readImageStats(t *testing.T, s *Store) imageStats {
	t.Helper()
	st := imageStats{refs: map[[sha256.Size]byte]uint32{}}
	err := s.db.View(func(tx *bolt.Tx) error {
		_ = tx.Bucket(bucketBlobs).ForEach(func(_, v []byte) error {
			st.blobs++
			st.blobBytes += len(v)
			return nil
		})
		_ = tx.Bucket(bucketBlobRefs).ForEach(func(k, v []byte) error {
			st.refs[[sha256.Size]byte(k)] = binary.BigEndian.Uint32(v)
			return nil
		})
		_ = tx.Bucket(bucketItems).ForEach(func(_, v []byte) error {
			st.itemBytes += len(v)
			return nil
		})
		st.itemLists = tx.Bucket(bucketItemBlobs).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestImagesStoredOnce: an image carried again by later turns of a chain,
// or resent in a stateless client's whole history, is stored once, by the
// hash of its bytes; transcripts and responses read it back byte for byte;
// its bytes go when the last response referencing it does.
func TestImagesStoredOnce(t *testing.T) {
	s := newStore(t, Options{})
	a, araw := photo(1, 300<<10)
	b, braw := photo(2, 200<<10)
	small := "data:image/png;base64," + base64.StdEncoding.EncodeToString([]byte("tiny"))
	wrapped := a[:1000] + "\n" + a[1000:] // would not round-trip: kept inline as it came

	r1 := turn("r1", nil)
	r1.Input = []hermes.Message{withImages("what is this?", a)}
	r1.Transcript = append(r1.Input, r1.Output...)
	r2 := turn("r2", r1)
	r2.Input = []hermes.Message{withImages("and these?", a, b, small, wrapped)}
	r2.Transcript = append(append(append([]hermes.Message(nil), r1.Transcript...), r2.Input...), r2.Output...)
	// A stateless client sends its whole history again, images included.
	r3 := turn("r3", nil)
	r3.Input = append(append([]hermes.Message(nil), r1.Transcript...), r2.Input...)
	r3.Transcript = append(append([]hermes.Message(nil), r3.Input...), r3.Output...)
	in2 := r2.Input[0].Parts[1].ImageURL
	apply(t, s, PutResponse(r1), PutResponse(r2), PutResponse(r3))
	if r2.Input[0].Parts[1].ImageURL != in2 {
		t.Fatal("storing changed the caller's message")
	}

	st := readImageStats(t, s)
	if st.blobs != 2 || st.blobBytes != len(araw)+len(braw) {
		t.Errorf("%d blobs of %d bytes, want the two images once: %d bytes", st.blobs, st.blobBytes, len(araw)+len(braw))
	}
	if st.refs[sha256.Sum256(araw)] != 4 || st.refs[sha256.Sum256(braw)] != 2 {
		t.Errorf("references: a %d (want 4), b %d (want 2)", st.refs[sha256.Sum256(araw)], st.refs[sha256.Sum256(braw)])
	}
	if st.itemBytes > 2*len(wrapped)+20<<10 { // r2 and r3 carry the wrapped one inline
		t.Errorf("item records hold %d bytes: images stayed inline", st.itemBytes)
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketItems).ForEach(func(k, v []byte) error {
			if bytes.Contains(v, []byte(b[30:200])) || bytes.Count(v, []byte(a[30:200])) > 1 {
				t.Errorf("the items of %s hold an image's data", k)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*hermes.StoredResponse{r1, r2, r3} {
		wantTranscript(t, s, r)
		got, err := s.Response(r.ID)
		if err != nil || !reflect.DeepEqual(got.Input, r.Input) {
			t.Fatalf("Response(%s): %v; input read back differs", r.ID, err)
		}
	}

	// Replacing a response keeps the counts; deleting releases them.
	apply(t, s, PutResponse(r2))
	if st := readImageStats(t, s); st.refs[sha256.Sum256(araw)] != 4 {
		t.Errorf("after replacing r2: a has %d references, want 4", st.refs[sha256.Sum256(araw)])
	}
	apply(t, s, DeleteResponse("r1"), DeleteResponse("r2"))
	if st := readImageStats(t, s); st.blobs != 2 || st.refs[sha256.Sum256(araw)] != 2 || st.refs[sha256.Sum256(braw)] != 1 {
		t.Errorf("after r1 and r2 went: %d blobs, a %d refs, b %d refs; want r3's alone (2, 1)", st.blobs, st.refs[sha256.Sum256(araw)], st.refs[sha256.Sum256(braw)])
	}
	wantTranscript(t, s, r3)
	apply(t, s, DeleteResponse("r3"))
	if st := readImageStats(t, s); st.blobs != 0 || len(st.refs) != 0 || st.itemLists != 0 {
		t.Errorf("after every response went: %d blobs, %d counts, %d lists left", st.blobs, len(st.refs), st.itemLists)
	}
	checkItems(t, s)
}

// TestImagesChainBytes: a 20-turn chain whose client attaches the same
// 512 KiB screenshot to every turn stores it once. The figure: bytes of items
// and images in the store, against 40 copies of its base64.
func TestImagesChainBytes(t *testing.T) {
	s := newStore(t, Options{Capacity: 1000})
	shot, raw := photo(3, 512<<10)
	var prev *hermes.StoredResponse
	for i := range 20 {
		r := turn("c"+strings.Repeat("x", i), prev)
		r.Input = []hermes.Message{withImages("look again", shot)}
		r.Transcript = append(r.Transcript[:len(r.Transcript)-2], append(r.Input, r.Output...)...)
		apply(t, s, PutResponse(r))
		prev = r
	}
	st := readImageStats(t, s)
	stored := st.blobBytes + st.itemBytes
	t.Logf("20 turns × one %d-byte image: %d bytes stored (images %d, items %d); inline would be over %d",
		len(raw), stored, st.blobBytes, st.itemBytes, 20*len(shot))
	if st.blobs != 1 || stored > len(raw)+64<<10 {
		t.Errorf("%d blobs, %d bytes stored; want the image once", st.blobs, stored)
	}
	wantTranscript(t, s, prev)
}

// TestImageMissingIsCorrupt: a node naming an image the store lost is
// reported as corrupt, naming the response, not read as an empty image.
func TestImageMissingIsCorrupt(t *testing.T) {
	s := newStore(t, Options{})
	a, raw := photo(4, 4<<10)
	r := turn("r1", nil)
	r.Input = []hermes.Message{withImages("see", a)}
	apply(t, s, PutResponse(r))
	h := sha256.Sum256(raw)
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketBlobs).Delete(h[:]) }); err != nil {
		t.Fatal(err)
	}
	_, err := s.Transcript("r1")
	if e := wantCode(t, err, hermes.EInternal); !strings.Contains(e.Message, `"r1"`) || !strings.Contains(e.Message, "missing") {
		t.Errorf("Transcript: %v", err)
	}
	_, err = s.Response("r1")
	wantCode(t, err, hermes.EInternal)
}

// TestSchema2Opens: a schema-2 file (images inline in its items) opens as
// schema 3 and reads as before; its images are not moved.
func TestSchema2Opens(t *testing.T) {
	path := t.TempDir() + "/api_server.db"
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := photo(5, 8<<10)
	r := turn("old", nil)
	r.Input = []hermes.Message{withImages("see", a)}
	r.Transcript = append(r.Input, r.Output...)
	n := newNode(nil, r)
	rec, err := encode(n) // as schema 2 wrote it: inline
	if err != nil {
		t.Fatal(err)
	}
	apply(t, s, PutResponse(r))
	err = s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketItems).Put([]byte("old"), rec); err != nil {
			return err
		}
		for _, b := range [][]byte{bucketBlobs, bucketBlobRefs, bucketItemBlobs} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchema, binary.BigEndian.AppendUint32(nil, 2))
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openAt(t, path, Options{})
	var v uint32
	_ = s.db.View(func(tx *bolt.Tx) error { v = binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keySchema)); return nil })
	if v != schemaVersion {
		t.Errorf("schema %d after opening a schema-2 file", v)
	}
	wantTranscript(t, s, r)
	apply(t, s, DeleteResponse("old"))
	checkItems(t, s)
}
