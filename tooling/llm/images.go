package llm

import (
	"context"
	"encoding/base64"
	"image"
	_ "image/gif" // image.DecodeConfig reads the sizes of the formats
	_ "image/jpeg"
	_ "image/png"
	"math"
	"net/http"
	"strings"
	"sync"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/tooling"
)

// maxFetchedImage bounds one image fetched for a model (what OpenAI accepts
// for one image); inlinedCacheSize how many fetched images an upstream
// keeps, so a chain's later turns do not fetch its images again.
const (
	maxFetchedImage  = 20 << 20
	inlinedCacheSize = 64
)

// inlined caches fetched images as data URLs, by URL.
type inlined struct {
	mu sync.Mutex // guards m
	m  map[string]string
}

func (c *inlined) get(url string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[url]
	return v, ok
}

func (c *inlined) put(url, data string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= inlinedCacheSize {
		c.m = make(map[string]string) // crude, bounded: start over when full
	}
	c.m[url] = data
}

// inlineImages returns msgs with every http(s) image URL replaced by the
// image itself as a data URL, fetched through FetchImage (fetch_images:
// for local servers that cannot fetch). msgs is copied only where a
// message changes; the transcript it came from is left as it is.
func (u *Upstream) inlineImages(ctx context.Context, msgs []hermes.Message) ([]hermes.Message, error) {
	var out []hermes.Message
	for i, m := range msgs {
		var parts []hermes.Part
		for j, p := range m.Parts {
			if p.Type != "image_url" || !isHTTPURL(p.ImageURL) {
				continue
			}
			data, err := u.fetchImage(ctx, p.ImageURL)
			if err != nil {
				return nil, err
			}
			if parts == nil {
				parts = append([]hermes.Part(nil), m.Parts...)
			}
			parts[j].ImageURL = data
		}
		if parts == nil {
			continue
		}
		if out == nil {
			out = append([]hermes.Message(nil), msgs...)
		}
		out[i].Parts = parts
	}
	if out == nil {
		return msgs, nil
	}
	return out, nil
}

func (u *Upstream) fetchImage(ctx context.Context, url string) (string, error) {
	if data, ok := u.images.get(url); ok {
		return data, nil
	}
	b, ctype, err := u.opts.FetchImage(ctx, url, maxFetchedImage)
	if err != nil {
		if ctx.Err() != nil {
			return "", cancelled(ctx)
		}
		return "", &hermes.Error{Code: hermes.EInvalid, Param: "messages", Message: "The image at " + tooling.CutBytes(url, 200) + " could not be fetched: " + err.Error(), Cause: err}
	}
	if len(b) > maxFetchedImage {
		return "", &hermes.Error{Code: hermes.EInvalid, Param: "messages", Message: "The image at " + tooling.CutBytes(url, 200) + " is larger than 20 MB."}
	}
	media, _, _ := strings.Cut(ctype, ";")
	media = strings.ToLower(strings.TrimSpace(media))
	if !strings.HasPrefix(media, "image/") || strings.HasPrefix(http.DetectContentType(b), "text/") {
		return "", &hermes.Error{Code: hermes.EInvalid, Param: "messages",
			Message: "The URL " + tooling.CutBytes(url, 200) + " is not an image (its content type is " + tooling.CutBytes(ctype, 80) + ")."}
	}
	data := "data:" + media + ";base64," + base64.StdEncoding.EncodeToString(b)
	u.images.put(url, data)
	return data, nil
}

func isHTTPURL(s string) bool {
	l := strings.ToLower(s[:min(len(s), 8)])
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://")
}

// Image token costs as OpenAI counts them: a low-detail image, and each
// 512-pixel tile of one at high detail on top of the base.
const (
	imageBaseTokens = 85
	imageTileTokens = 170
	// imageHeaderChars is how much of a data URL's base64 is decoded to
	// read the image's size: enough for a JPEG's EXIF block before its
	// frame header, far less than the image.
	imageHeaderChars = 96 << 10
)

// imageTokens estimates what one image part costs a model's prompt, as
// OpenAI counts it: 85 tokens at low detail; otherwise 85 plus 170 per
// 512-pixel tile once the image is scaled to fit 2048×2048 and its short
// side to 768. An image whose size cannot be read from its data URL (a URL
// the server fetches, a format the standard library does not parse) is
// counted as 1024×1024 (765 tokens). Counting a data URL's characters
// instead, as text, made one photo look like a hundred thousand tokens
// and pushed turns into needless compaction.
func imageTokens(p hermes.Part) int {
	if p.Detail == "low" {
		return imageBaseTokens
	}
	w, h := 1024, 1024
	if _, data, ok := strings.Cut(p.ImageURL, ";base64,"); ok && strings.HasPrefix(p.ImageURL, "data:") {
		// Decoded as the image's header parser reads it, which for most
		// formats is its first few dozen bytes: decoding the whole
		// imageHeaderChars first cost 150 µs and a 72 KB copy of it on
		// every estimate, twice a model call and more while compacting.
		data = data[:min(len(data), imageHeaderChars)]
		r := base64.NewDecoder(base64.StdEncoding, strings.NewReader(data[:len(data)/4*4]))
		if cfg, _, err := image.DecodeConfig(r); err == nil && cfg.Width > 0 && cfg.Height > 0 {
			w, h = cfg.Width, cfg.Height
		}
	}
	fw, fh := float64(w), float64(h)
	if s := 2048 / max(fw, fh); s < 1 {
		fw, fh = fw*s, fh*s
	}
	if s := 768 / min(fw, fh); s < 1 {
		fw, fh = fw*s, fh*s
	}
	tiles := int(math.Ceil(fw/512)) * int(math.Ceil(fh/512))
	return imageBaseTokens + imageTileTokens*tiles
}
